//! Lookup cost of the pattern index with 100,000 registrations (exact, prefix and
//! wildcard mixed), the dealer's and broker's hot path: `cargo bench --bench index`.
//! Prints nanoseconds per lookup for each kind of match.

use std::hint::black_box;
use std::time::Instant;

use junction::wamp::pattern::PatternIndex;
use junction::wamp::uri::MatchPolicy;

fn main() {
    const N: u32 = 100_000;
    let mut idx = PatternIndex::default();
    for i in 0..N {
        let policy = match i % 3 {
            0 => MatchPolicy::Exact,
            1 => MatchPolicy::Prefix,
            _ => MatchPolicy::Wildcard,
        };
        let uri = match policy {
            MatchPolicy::Wildcard => format!("com.app{}..op{}", i % 1000, i),
            _ => format!("com.app{}.obj{}.op", i % 1000, i),
        };
        idx.insert(&uri, policy, i);
    }
    let probes: Vec<(&str, String)> = vec![
        ("exact", "com.app3.obj3.op".into()),
        ("prefix", "com.app4.obj4.op.deeper.still".into()),
        ("wildcard", "com.app5.anything.op5".into()),
        ("miss", "org.nothing.here".into()),
    ];
    println!("pattern index with {N} entries");
    for (name, uri) in &probes {
        let rounds = 1_000_000u32;
        let start = Instant::now();
        let mut hits = 0u32;
        for _ in 0..rounds {
            hits += u32::from(black_box(idx.best(black_box(uri))).is_some());
        }
        let ns = start.elapsed().as_nanos() as f64 / f64::from(rounds);
        println!("best({name:8}) {ns:7.1} ns/lookup  (hit: {})", hits > 0);
        let start = Instant::now();
        let mut out = Vec::new();
        for _ in 0..rounds {
            out.clear();
            idx.matches(black_box(uri), &mut out);
            black_box(&out);
        }
        let ns = start.elapsed().as_nanos() as f64 / f64::from(rounds);
        println!("matches({name:8}) {ns:7.1} ns/lookup  ({} matches)", out.len());
    }
}
