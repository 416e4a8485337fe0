//! Native timing of the same hash (with `--cfg sha2_backend="soft"`: without SHA extensions).

use std::time::Instant;

fn main() {
    const ROUNDS: u32 = 400;
    sha256_bound::hash_rounds(50);
    let started = Instant::now();
    let fold = sha256_bound::hash_rounds(ROUNDS);
    let micros = started.elapsed().as_secs_f64() * 1e6 / f64::from(ROUNDS);
    let rate = sha256_bound::BODY_BYTES as f64 / micros;
    println!("{micros:.0} µs per 256 KiB ({rate:.0} MB/s) [{fold}]");
}
