//! A TCP proxy between the app and the real Redis that a test can black-hole: bytes stop
//! flowing both ways (nothing is refused or closed, as when a network path dies), then
//! flow again on `restore`.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct Proxy {
    /// `redis_url` with the proxy's address in place of Redis's.
    pub url: String,
    open: watch::Sender<bool>,
    accept: JoinHandle<()>,
}

/// `redis://[auth@]host:port[/db]` → (`redis://[auth@]`, `host:port`, `[/db]`).
fn split(url: &str) -> (String, String, String) {
    let (scheme, rest) = url.split_once("://").expect("redis URL");
    let (auth, rest) = rest.rsplit_once('@').map_or(("", rest), |(a, r)| (a, r));
    let (hostport, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    let auth = if auth.is_empty() { String::new() } else { format!("{auth}@") };
    (format!("{scheme}://{auth}"), hostport.to_owned(), path.to_owned())
}

impl Proxy {
    pub async fn start(redis_url: &str) -> Proxy {
        let (head, upstream, tail) = split(redis_url);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let url = format!("{head}{}{tail}", listener.local_addr().expect("addr"));
        let (open, _) = watch::channel(true);
        let gate = open.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pump(cr, sw, gate.subscribe()));
                tokio::spawn(pump(sr, cw, gate.subscribe()));
            }
        });
        Proxy { url, open, accept }
    }

    /// Stops every byte, on open and new connections alike.
    pub fn blackhole(&self) {
        self.open.send_replace(false);
    }

    pub fn restore(&self) {
        self.open.send_replace(true);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut open: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if open.wait_for(|o| *o).await.is_err() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Read while open, but held back if the hole opened meanwhile.
        if open.wait_for(|o| *o).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
        tokio::task::yield_now().await;
    }
}

/// How long a request may take while Redis is black-holed: the configured timeout plus
/// generous slack for a busy CI machine, still far below any hang.
pub const NO_HANG: Duration = Duration::from_secs(3);
