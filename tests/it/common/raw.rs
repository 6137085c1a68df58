//! Raw HTTP/1.1 exchanges that never panic on a hostile answer: exact request bytes on a
//! fresh connection, whatever comes back.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// What came back on a raw connection.
#[derive(Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A complete status line and header block (the body as far as it was read).
    Answered {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// The server closed the connection without (a complete head of) an answer.
    Closed { received: Vec<u8> },
    /// Nothing complete within the deadline.
    TimedOut { received: Vec<u8> },
}

impl fmt::Debug for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cut = |b: &[u8]| {
            let text = String::from_utf8_lossy(&b[..b.len().min(600)]).into_owned();
            if b.len() > 600 {
                format!("{text}… ({} bytes)", b.len())
            } else {
                text
            }
        };
        match self {
            Outcome::Answered {
                status,
                headers,
                body,
            } => write!(f, "{status} {headers:?} {:?}", cut(body)),
            Outcome::Closed { received } => write!(f, "closed after {:?}", cut(received)),
            Outcome::TimedOut { received } => write!(f, "timed out after {:?}", cut(received)),
        }
    }
}

impl Outcome {
    pub fn status(&self) -> Option<u16> {
        match self {
            Outcome::Answered { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The status, which there must be.
    pub fn expect_status(&self) -> u16 {
        self.status()
            .unwrap_or_else(|| panic!("no answer: {self:?}"))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        match self {
            Outcome::Answered { headers, .. } => headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str()),
            _ => None,
        }
    }

    pub fn body_text(&self) -> String {
        match self {
            Outcome::Answered { body, .. } => String::from_utf8_lossy(body).into_owned(),
            Outcome::Closed { received } | Outcome::TimedOut { received } => {
                String::from_utf8_lossy(received).into_owned()
            }
        }
    }
}

/// Sends `request` (exact bytes: the caller writes the whole request, `Connection: close`
/// included if wanted) on a fresh connection and reads until the server closes or `deadline`
/// passes. Reads while writing, since the server may answer before reading everything.
pub async fn exchange(addr: SocketAddr, request: Vec<u8>, deadline: Duration) -> Outcome {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = match tokio::net::TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(_) => return Outcome::Closed { received: vec![] },
    };
    let (mut reader, mut writer) = stream.into_split();
    let write = tokio::spawn(async move {
        let _ = writer.write_all(&request).await;
        // Keep the write half open: a half-close can make servers give up early.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        drop(writer);
    });
    let mut received = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let until = tokio::time::Instant::now() + deadline;
    let timed_out = loop {
        match tokio::time::timeout_at(until, reader.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break false,
            Ok(Ok(n)) => {
                received.extend_from_slice(&buf[..n]);
                if complete_answer(&received) {
                    break false;
                }
            }
            Err(_) => break true,
        }
    };
    write.abort();
    match parse_answer(&received) {
        Some(answered) => answered,
        None if timed_out => Outcome::TimedOut { received },
        None => Outcome::Closed { received },
    }
}

/// True once `received` holds a head and a body of the announced `Content-Length`.
fn complete_answer(received: &[u8]) -> bool {
    let Some(end) = find(received, b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&received[..end]).to_ascii_lowercase();
    let length = head
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim() == "content-length")
        .and_then(|(_, v)| v.trim().parse::<usize>().ok());
    match length {
        Some(n) => received.len() >= end + 4 + n,
        None => false,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_answer(received: &[u8]) -> Option<Outcome> {
    let end = find(received, b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&received[..end]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .filter(|l| l.starts_with("HTTP/1."))
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Some(Outcome::Answered {
        status,
        headers,
        body: received[end + 4..].to_vec(),
    })
}
