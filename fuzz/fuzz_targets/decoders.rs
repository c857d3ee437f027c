//! Fuzz format sniffing, inspection and the concatenated-stream decoders.
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let source = bty_image::source::MemorySource::new("fuzz", data.to_vec());
    if let Ok(info) = bty_image::inspect(&source) {
        if let Ok(raw) = bty_image::ImageSource::open_stream(&source) {
            let mut stream = bty_image::decode::decoded_stream(raw, &info.compression);
            let mut sink = vec![0u8; 1 << 16];
            let mut total = 0usize;
            while let Ok(n) = stream.read(&mut sink) {
                total += n;
                if n == 0 || total > 16 << 20 {
                    break;
                }
            }
        }
    }
});
