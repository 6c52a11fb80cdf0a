//! What a publish decision costs in the pure cores: verifying a token, checking a key record
//! (hash + constant-time compare + allowlist), parsing the publish path.

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{Criterion, criterion_group, criterion_main};
use relay::auth::key::KeySpec;
use relay::auth::token::{Claims, mint, verify};
use relay::path::{PublishTarget, StreamPath};

fn decisions(c: &mut Criterion) {
    let secret = b"a-token-secret-of-32-bytes-long!";
    let path = StreamPath {
        user_id: "alice@example.com".into(),
        stream_id: "m1".into(),
    };
    let ip: IpAddr = "203.0.113.7".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let token = mint(
        secret,
        &Claims {
            u: path.user_id.clone(),
            s: path.stream_id.clone(),
            exp: 4_000_000_000,
            ip: Some("203.0.113.7".into()),
        },
    );
    c.bench_function("token verify", |b| {
        b.iter(|| verify(secret, black_box(&token), &path, ip, 1_700_000_000))
    });
    let key = KeySpec {
        user_id: path.user_id.clone(),
        stream_id: Some(path.stream_id.clone()),
        allow_ips: vec!["203.0.113.0/24".into(), "2001:db8::/32".into()],
        ..Default::default()
    }
    .make([7; 32], 1_700_000_000);
    let Ok(key) = key else { return };
    c.bench_function("key check", |b| {
        b.iter(|| {
            key.record
                .check(Some(black_box(&key.key)), Some(&path), ip, 1_700_000_001)
        })
    });
    let name = format!("alice%40example.com/m1?token={token}");
    c.bench_function("publish path parse", |b| {
        b.iter(|| PublishTarget::from_rtmp("live", black_box(&name)))
    });
}

criterion_group!(benches, decisions);
criterion_main!(benches);
