//! Raw HTTP/1.1 over TCP, for what a well-behaved client library will not
//! do: declare a `Content-Length` and then not send the body, or stream a
//! body in chunks of the test's choosing. Answers are awaited with a read
//! timeout, never timed.
#![allow(clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// What the node answered on a raw connection: the status and the whole
/// text (head and body).
pub struct Answer {
    pub status: u16,
    pub text: String,
}

/// A raw connection to `url` whose reads give up after `secs`.
pub fn connect(url: &str, secs: u64) -> TcpStream {
    let address = url.trim_start_matches("http://");
    let stream = TcpStream::connect(address).expect("the server accepts connections");
    stream
        .set_read_timeout(Some(Duration::from_secs(secs)))
        .expect("a read timeout");
    stream
}

/// Sends `POST path` headers declaring `length` body bytes, and no body.
pub fn post_head(stream: &mut TcpStream, path: &str, headers: &[(&str, String)], length: usize) {
    let mut head =
        format!("POST {path} HTTP/1.1\r\nHost: wrapsync\r\nContent-Length: {length}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("headers sent");
}

/// Sends `POST path` with `body` in chunks of `piece` bytes and no
/// declared length (`Transfer-Encoding: chunked`), stopping quietly when
/// the server closes the connection.
pub fn post_chunked(
    stream: &mut TcpStream,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
    piece: usize,
) {
    let mut head =
        format!("POST {path} HTTP/1.1\r\nHost: wrapsync\r\nTransfer-Encoding: chunked\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("headers sent");
    for piece in body.chunks(piece) {
        let mut chunk = format!("{:x}\r\n", piece.len()).into_bytes();
        chunk.extend_from_slice(piece);
        chunk.extend_from_slice(b"\r\n");
        if stream.write_all(&chunk).is_err() {
            return;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n");
}

/// The answer's head and body, up to the end of the connection or the
/// read timeout; `None` if no answer came at all.
pub fn answer(stream: &mut TcpStream) -> Option<Answer> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                bytes.extend_from_slice(&buf[..n]);
                // A whole problem document arrived (they are small).
                let text = String::from_utf8_lossy(&bytes);
                if let Some((_, body)) = text.split_once("\r\n\r\n") {
                    if body.ends_with('}') {
                        break;
                    }
                }
            }
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let status = text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()?;
    Some(Answer { status, text })
}

/// `answer` is the problem `code` with `status`; a missing answer means
/// the server waited for a body it should have refused without.
#[track_caller]
pub fn assert_problem(answer: Option<Answer>, status: u16, code: &str) -> Answer {
    let answer = answer.unwrap_or_else(|| {
        panic!("no answer within the read timeout (expected {status} {code}): the server waited for the body")
    });
    assert_eq!(answer.status, status, "{}", answer.text);
    assert!(
        answer.text.contains(&format!("/problems/{code}")),
        "{}",
        answer.text
    );
    answer
}
