//! The fuzz targets' bodies (`fuzz/src`, compiled in here without libFuzzer) run
//! over the committed seed corpora (`fuzz/corpus/<target>/`), the reproducers of past
//! findings (`fuzz/artifacts-found/`), and a fixed set of mutations of every corpus
//! file (bit flips, truncations, splices; a seeded generator, so every run is the
//! same). A quick, deterministic stand-in for a fuzzing run that needs no nightly
//! toolchain and no instrumented build; `fuzz/smoke.sh` runs the real fuzzers.

#[path = "../fuzz/src/lib.rs"]
mod harness;

use std::path::{Path, PathBuf};

use junction::wamp::codec::Serializer;

/// Mutated variants per corpus file (set `FUZZ_CORPUS_MUTATIONS` to change).
const MUTATIONS: usize = 256;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Every file of `fuzz/corpus/<target>/`, and the findings named `<target>-*`.
fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let corpus = root().join("corpus").join(target);
    for entry in std::fs::read_dir(&corpus).unwrap_or_else(|e| panic!("{}: {e}", corpus.display())) {
        files.push(entry.expect("corpus entry").path());
    }
    if let Ok(found) = std::fs::read_dir(root().join("artifacts-found")) {
        for entry in found.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&format!("{target}-")) {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    assert!(!files.is_empty(), "no corpus for {target}");
    files
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read(&p).expect("read corpus file")))
        .collect()
}

/// xorshift64*: a small seeded generator, so the mutations are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A variant of `data`: a few bit flips, byte sets, insertions, deletions, a
/// truncation or a splice with `other`.
fn mutate(rng: &mut Rng, data: &[u8], other: &[u8]) -> Vec<u8> {
    let mut d = data.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(d.len() + 1);
        match rng.below(6) {
            0 if at < d.len() => d[at] ^= 1 << rng.below(8),
            1 if at < d.len() => d[at] = [0, 0x7f, 0x80, 0xff, b'"', b'[', 0x1e][rng.below(7)],
            2 => d.insert(at, rng.next() as u8),
            3 if at < d.len() => {
                d.remove(at);
            }
            4 => d.truncate(at),
            _ => {
                let from = rng.below(other.len() + 1);
                let len = rng.below(other.len() - from + 1).min(64);
                d.splice(at..at, other[from..from + len].iter().copied());
            }
        }
    }
    d
}

/// Runs `body` over every input of `target` and its mutations; names the input that
/// panicked.
fn replay(target: &str, body: impl Fn(&[u8]) + std::panic::RefUnwindSafe) {
    let files = inputs(target);
    let mutations =
        std::env::var("FUZZ_CORPUS_MUTATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(MUTATIONS);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ target.len() as u64);
    let mut runs = 0;
    for (i, (name, data)) in files.iter().enumerate() {
        let run = |input: &[u8], what: &str| {
            if std::panic::catch_unwind(|| body(input)).is_err() {
                let hex: String = input.iter().map(|b| format!("{b:02x}")).collect();
                panic!("{target}: {what} of {name} failed; input (hex): {hex}");
            }
        };
        run(data, "the file");
        let other = &files[(i + 1) % files.len()].1;
        for m in 0..mutations {
            run(&mutate(&mut rng, data, other), &format!("mutation {m}"));
        }
        runs += 1 + mutations;
    }
    eprintln!("{target}: {runs} inputs from {} files", files.len());
}

#[test]
fn decode_json() {
    replay("decode_json", |d| harness::decode_roundtrip(Serializer::Json, d));
}

#[test]
fn decode_msgpack() {
    replay("decode_msgpack", |d| harness::decode_roundtrip(Serializer::MsgPack, d));
}

#[test]
fn decode_cbor() {
    replay("decode_cbor", |d| harness::decode_roundtrip(Serializer::Cbor, d));
}

#[test]
fn rawsocket_frames() {
    replay("rawsocket_frames", harness::rawsocket_stream);
}

#[test]
fn session_sequence() {
    replay("session_sequence", harness::session_sequence);
}

#[test]
fn websocket_frames() {
    replay("websocket_frames", harness::websocket_frames);
}
