//! Fuzz the qcow2 header, table parser and reader: any input must give a result or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bty_image::qcow2::exercise(data, 16 << 20);
});
