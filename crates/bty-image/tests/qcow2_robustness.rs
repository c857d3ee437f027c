//! The qcow2 reader against small seed images checked into `tests/data` (made with qemu-img;
//! the expected digests are of `qemu-img convert -O raw` output), and a deterministic mutation
//! run over them: thousands of damaged variants must each give a result or an error — never a
//! panic or a hang. The cargo-fuzz target in `fuzz/` runs the same entry point with coverage
//! guidance.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use bty_image::buffer::AlignedBuf;
use bty_image::produce::{Produced, open_producer};
use bty_image::qcow2::exercise;
use bty_image::source::MemorySource;
use bty_image::{ImageSource, inspect};
use sha2::{Digest, Sha256};

const SEEDS: [(&str, &str); 4] = [
    (
        "seed-plain.qcow2",
        "267c31be57e1520eb60b57852d15257c6a6686d7801b69894879b2b1fd8d5bbc",
    ),
    (
        "seed-zlib.qcow2",
        "267c31be57e1520eb60b57852d15257c6a6686d7801b69894879b2b1fd8d5bbc",
    ),
    (
        "seed-zstd-extl2.qcow2",
        "267c31be57e1520eb60b57852d15257c6a6686d7801b69894879b2b1fd8d5bbc",
    ),
    (
        "seed-v2.qcow2",
        "9a61c3070c1576d87a418249e1509affbc211b0d6d5d027e39f2ee7286caf0b4",
    ),
];

fn seed(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The whole decoded image, through the same producer a flash uses.
fn decode(data: Vec<u8>) -> Vec<u8> {
    let source: Arc<dyn ImageSource> = Arc::new(MemorySource::new("seed", data));
    let info = inspect(source.as_ref()).unwrap();
    let mut p = open_producer(source, &info, false, Arc::new(AtomicU64::new(0))).unwrap();
    let mut buf = AlignedBuf::new(1 << 20);
    let mut out = Vec::new();
    while let Some(piece) = p.next(&mut buf).unwrap() {
        match piece {
            Produced::Data => out.extend_from_slice(buf.as_slice()),
            Produced::Zeros(n) => out.resize(out.len() + n as usize, 0),
        }
    }
    out
}

#[test]
fn seeds_decode_to_what_qemu_img_gives() {
    for (name, want) in SEEDS {
        let got = hex::encode(Sha256::digest(decode(seed(name))));
        assert_eq!(got, want, "{name}");
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn thousands_of_damaged_variants_never_panic() {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut outcomes = (0, 0);
    for (name, _) in SEEDS {
        let original = seed(name);
        for _ in 0..1500 {
            let mut d = original.clone();
            match rng.below(4) {
                // A few random bytes anywhere.
                0 => {
                    for _ in 0..1 + rng.below(4) {
                        let i = rng.below(d.len());
                        d[i] = rng.next() as u8;
                    }
                }
                // A byte in the header or the tables, where it matters most.
                1 => {
                    let i = rng.below(d.len().min(8192));
                    d[i] ^= 1 << rng.below(8);
                }
                // A whole big-endian word replaced by something extreme.
                2 => {
                    let i = rng.below(d.len().min(8192) - 8) & !7;
                    let v = [0u64, u64::MAX, 1 << 63, 1 << 62, rng.next()][rng.below(5)];
                    d[i..i + 8].copy_from_slice(&v.to_be_bytes());
                }
                // Truncation.
                _ => d.truncate(rng.below(d.len())),
            }
            match exercise(&d, 64 << 20) {
                Ok(_) => outcomes.0 += 1,
                Err(_) => outcomes.1 += 1,
            }
        }
    }
    // Both outcomes must occur, or the mutations are not reaching the parser.
    assert!(outcomes.0 > 100 && outcomes.1 > 100, "{outcomes:?}");
}
