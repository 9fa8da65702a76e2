//! A raw HTTP/1.1 client: the request bytes go out exactly as written (no normalisation of
//! the path, no header checks), and the reply is read to the end.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A reply: its status, head fields, body and every byte as text.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) raw: String,
    pub(crate) body: String,
    headers: Vec<(String, String)>,
}

impl Reply {
    /// The value of the first field named `name` (case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }
}

/// Sends `raw` on a fresh connection and reads until the server closes it (requests say
/// `connection: close`). The request is written from its own task, so a server that answers
/// before reading the whole body (413) does not block the reply; a reset after the reply is
/// fine.
pub(crate) async fn send(addr: SocketAddr, raw: &[u8]) -> Reply {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut read, mut write) = stream.into_split();
    let request = raw.to_vec();
    let writer = tokio::spawn(async move {
        let _ = write.write_all(&request).await;
        let _ = write.flush().await;
        // Keep the write half open until the reply is read: closing it early would end the
        // request before the server answers.
        tokio::time::sleep(Duration::from_secs(10)).await;
        drop(write);
    });
    let mut bytes = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let read_all = async {
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read_all)
        .await
        .expect("the server answered within 10 s");
    writer.abort();
    parse(&bytes)
}

fn parse(bytes: &[u8]) -> Reply {
    let raw = String::from_utf8_lossy(bytes).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {raw:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let body = body.to_owned();
    Reply {
        status,
        raw: raw.clone(),
        body,
        headers,
    }
}
