//! Unauthenticated abuse of a running node, for the abuse soak (see
//! `tests/load/abuse-soak.sh` and `docs/security.md`): what an attacker
//! with no account can throw at a node while its phones work. Each attack is
//! a loop on its own threads, as fast as the node answers:
//!
//! - `logins`: `POST /v1/auth/login` with a 1,000,000-character username;
//! - `guessing`: wrong passwords for one real account, from several
//!   loopback source addresses (127.0.0.2 …), as a botnet would;
//! - `held`: connections to `POST /federation/v1/sync` that declare a
//!   30 MB body and trickle a kilobyte a second, reopened when cut;
//! - `headers`: unauthenticated reads with 8 KB `X-Request-Id`,
//!   `User-Agent` and `Device-Id` values, 4 KB path segments and query
//!   strings.
//!
//!
//! With `--member NAME:PASSWORD --lead NAME:PASSWORD`, a signed-in member
//! attacks too (`devices`, `bloom`, `ops`, `streams`: see `member.rs`).
//! `--attacks` names the attacks to run (default: all those it can).
//!
//! ```sh
//! cargo run --release -p wrapsync-tests --bin wrapsync-abuse -- \
//!     --url http://127.0.0.1:8080 --secs 60 [--username fay] [--addresses 4] [--held 8] \
//!     [--member dana:PASSWORD --lead fay:PASSWORD] [--streams 64] [--attacks logins,devices]
//! ```
//!
//! It prints one JSON object: per attack, the answers by status (`error`:
//! no answer: refused, reset or timed out).

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[path = "abuse/member.rs"]
mod member;

struct Options {
    url: String,
    secs: u64,
    username: String,
    /// Source addresses for guessing: 127.0.0.2 up to 127.0.0.(1 + n).
    addresses: u8,
    /// Connections holding a declared 30 MB body at once.
    held: usize,
    /// The misbehaving member and the facilitator who puts them on a plan.
    member: Option<(String, String)>,
    /// Change-feed streams the member holds at once.
    streams: usize,
    /// The attacks to run; all of them when empty.
    attacks: Vec<String>,
}

impl Options {
    fn runs(&self, attack: &str) -> bool {
        self.attacks.is_empty() || self.attacks.iter().any(|a| a == attack)
    }
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        url: "http://127.0.0.1:8080".into(),
        secs: 60,
        username: "fay".into(),
        addresses: 4,
        held: 8,
        member: None,
        streams: 64,
        attacks: Vec::new(),
    };
    let (mut member, mut lead) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag}: not a number: {value}"))
        };
        match flag.as_str() {
            "--url" => o.url = value.trim_end_matches('/').to_string(),
            "--secs" => o.secs = number()?,
            "--username" => o.username = value.clone(),
            "--addresses" => o.addresses = number()?.clamp(1, 250) as u8,
            "--held" => o.held = number()? as usize,
            "--member" => member = Some(value.clone()),
            "--lead" => lead = Some(value.clone()),
            "--streams" => o.streams = number()? as usize,
            "--attacks" => o.attacks = value.split(',').map(str::to_string).collect(),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    o.member = match (member, lead) {
        (Some(member), Some(lead)) => Some((member, lead)),
        (None, None) => None,
        _ => return Err("--member and --lead go together".into()),
    };
    Ok(o)
}

/// Answers by status, per attack.
#[derive(Default)]
struct Tally(Mutex<BTreeMap<&'static str, BTreeMap<String, u64>>>);

impl Tally {
    fn count(&self, attack: &'static str, outcome: String) {
        if let Ok(mut t) = self.0.lock() {
            *t.entry(attack).or_default().entry(outcome).or_default() += 1;
        }
    }

    fn report(&self) -> Value {
        self.0.lock().map_or(Value::Null, |t| json!(*t))
    }
}

fn outcome(reply: reqwest::Result<reqwest::blocking::Response>) -> String {
    match reply {
        Ok(r) => {
            let status = r.status().as_u16().to_string();
            // Read the body so the connection is reused.
            let _ = r.bytes();
            status
        }
        Err(_) => "error".into(),
    }
}

fn client(source: Option<IpAddr>) -> Result<reqwest::blocking::Client, String> {
    reqwest::blocking::Client::builder()
        .local_address(source)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())
}

/// Where the floods come from: not 127.0.0.1, which the phone workload
/// logs in from, so what the soak measures is the node, not a shared
/// per-address bucket.
const FLOODS_FROM: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 100));

fn logins(o: &Options, until: Instant, tally: &Tally) -> Result<(), String> {
    let client = client(Some(FLOODS_FROM))?;
    let body = json!({ "username": "u".repeat(1_000_000), "password": "x" }).to_string();
    while Instant::now() < until {
        let reply = client
            .post(format!("{}/v1/auth/login", o.url))
            .header("content-type", "application/json")
            .body(body.clone())
            .send();
        tally.count("logins", outcome(reply));
    }
    Ok(())
}

fn guessing(o: &Options, source: Ipv4Addr, until: Instant, tally: &Tally) -> Result<(), String> {
    let client = client(Some(IpAddr::V4(source)))?;
    let mut n = 0u64;
    while Instant::now() < until {
        n += 1;
        let reply = client
            .post(format!("{}/v1/auth/login", o.url))
            .json(&json!({ "username": o.username, "password": format!("guess-{source}-{n}") }))
            .send();
        tally.count("guessing", outcome(reply));
    }
    Ok(())
}

fn headers(o: &Options, until: Instant, tally: &Tally) -> Result<(), String> {
    let client = client(Some(FLOODS_FROM))?;
    let long = "h".repeat(8 * 1024);
    let segment = "p".repeat(4 * 1024);
    let mut n = 0u64;
    while Instant::now() < until {
        n += 1;
        let url = match n % 3 {
            0 => format!("{}/v1/plans/{segment}{n}", o.url),
            1 => format!("{}/v1/plans?cursor={segment}{n}&limit={segment}", o.url),
            _ => format!("{}/v1/{segment}/{n}", o.url),
        };
        let reply = client
            .get(url)
            .header("x-request-id", format!("{long}{n}"))
            .header("user-agent", format!("{long}{n}"))
            .header("device-id", format!("{long}{n}"))
            .send();
        tally.count("headers", outcome(reply));
    }
    Ok(())
}

/// One connection declaring a 30 MB signed body and trickling it; answers
/// the status line it got, or `error` when the node cut it without one.
fn hold_one(address: &str, until: Instant) -> String {
    let Ok(mut stream) = TcpStream::connect(address) else {
        return "error".into();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(1000)));
    let head = format!(
        "POST /federation/v1/sync HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/cbor\r\n\
         content-length: 30000000\r\nauthorization: Bearer {}\r\n\r\n",
        stranger_token()
    );
    if stream.write_all(head.as_bytes()).is_err() {
        return "error".into();
    }
    let chunk = [0u8; 1024];
    let mut answer = [0u8; 64];
    while Instant::now() < until {
        match stream.read(&mut answer) {
            Ok(0) => return "closed".into(),
            Ok(n) => {
                let line = String::from_utf8_lossy(&answer[..n]);
                return line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("answered")
                    .to_string();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return "error".into(),
        }
        if stream.write_all(&chunk).is_err() {
            return "cut".into();
        }
    }
    "held-to-the-end".into()
}

/// A signed-request token from a node nobody knows: EdDSA-shaped, claims
/// that name the route, a signature of zeros.
fn stranger_token() -> String {
    use base64::Engine;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let header = json!({ "alg": "EdDSA", "typ": "JWT", "kid": "stranger" });
    let claims = json!({
        "iss": "county-nobody", "aud": "any", "iat": now, "exp": now + 60,
        "jti": format!("{now}"), "htm": "POST", "htu": "/federation/v1/sync", "bdy": "0",
    });
    format!("{}.{}.{}", b64(&header), b64(&claims), "A".repeat(86))
}

fn held(o: &Options, until: Instant, tally: &Tally) -> Result<(), String> {
    let address = o
        .url
        .strip_prefix("http://")
        .ok_or("--url must be http:// for held bodies")?
        .to_string();
    while Instant::now() < until {
        let status = hold_one(&address, until);
        tally.count("held", status);
    }
    Ok(())
}

fn run() -> Result<Value, String> {
    let o = options()?;
    let until = Instant::now() + Duration::from_secs(o.secs);
    let tally = Tally::default();
    let member = match &o.member {
        Some((member, lead)) => Some(member::prepare(&o, member, lead)?),
        None => None,
    };
    let outcomes: Vec<Result<(), String>> = std::thread::scope(|s| {
        let (o, tally) = (&o, &tally);
        let mut attacks = Vec::new();
        if o.runs("logins") {
            attacks.push(s.spawn(move || logins(o, until, tally)));
        }
        if o.runs("headers") {
            attacks.push(s.spawn(move || headers(o, until, tally)));
        }
        for i in 0..o.addresses {
            let source = Ipv4Addr::new(127, 0, 0, 2 + i);
            if o.runs("guessing") {
                attacks.push(s.spawn(move || guessing(o, source, until, tally)));
            }
        }
        for _ in 0..o.held {
            if o.runs("held") {
                attacks.push(s.spawn(move || held(o, until, tally)));
            }
        }
        if let Some(m) = &member {
            if o.runs("devices") {
                attacks.push(s.spawn(move || member::devices(o, m, until, tally)));
            }
            if o.runs("bloom") {
                attacks.push(s.spawn(move || member::bloom(o, m, until, tally)));
            }
            if o.runs("ops") {
                attacks.push(s.spawn(move || member::ops(o, m, until, tally)));
            }
            for _ in 0..o.streams {
                if o.runs("streams") {
                    attacks.push(s.spawn(move || member::streams(o, m, until, tally)));
                }
            }
        }
        attacks
            .into_iter()
            .map(|a| {
                a.join()
                    .unwrap_or_else(|_| Err("an attack panicked".into()))
            })
            .collect()
    });
    outcomes.into_iter().collect::<Result<Vec<()>, String>>()?;
    Ok(json!({ "secs": o.secs, "answers": tally.report() }))
}

fn main() {
    match run() {
        Ok(summary) => println!("{summary}"),
        Err(e) => {
            eprintln!("wrapsync-abuse: {e}");
            std::process::exit(1);
        }
    }
}
