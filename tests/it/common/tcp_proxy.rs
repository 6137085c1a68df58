//! A TCP forwarder that a test can cut and restore, to take a database "down" without
//! touching the database server itself.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::postgres::PgConnectOptions;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::db::TestDb;

pub struct TcpProxy {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    cuts: watch::Sender<u64>,
    accept: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// Forwards 127.0.0.1:<new port> to `target`.
    pub async fn start(target: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let (cuts, _) = watch::channel(0u64);
        let accept = {
            let up = up.clone();
            let cuts = cuts.clone();
            tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        drop(client); // refused: the "database" is down
                        continue;
                    }
                    let mut cut = cuts.subscribe();
                    tokio::spawn(async move {
                        let Ok(mut server) = TcpStream::connect(target).await else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = cut.changed() => {}
                        }
                    });
                }
            })
        };
        TcpProxy {
            addr,
            up,
            cuts,
            accept,
        }
    }

    /// A proxy in front of the PostgreSQL server of `db`, and the URL of `db` through it.
    pub async fn in_front_of(db: &TestDb) -> (TcpProxy, String) {
        let options: PgConnectOptions = db.url.parse().expect("a PostgreSQL URL");
        let authority = format!("{}:{}", options.get_host(), options.get_port());
        assert!(
            db.url.contains(&authority),
            "TEST_DATABASE_URL must name the host and port explicitly"
        );
        let target = tokio::net::lookup_host(&authority)
            .await
            .expect("resolve the PostgreSQL host")
            .next()
            .expect("an address");
        let proxy = TcpProxy::start(target).await;
        let url = db
            .url
            .replacen(&authority, &format!("127.0.0.1:{}", proxy.addr.port()), 1);
        (proxy, url)
    }

    /// Drops every forwarded connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}
