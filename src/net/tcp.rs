//! DNS over TCP (RFC 7766): length-prefixed messages, several per
//! connection, answered in order. Connections are capped in number, and a
//! client that goes idle or sends too slowly is closed, so none can hold
//! the listener. Runs on its own small runtime, apart from the control plane.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::{Table, client_ip};
use crate::dataplane::{MAX_MESSAGE, Stats, Transport, Worker};

/// Limits for TCP clients.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    /// How long a connection may wait for its next query.
    pub idle: Duration,
    /// How long one query may take to arrive once it has started.
    pub read: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 512,
            idle: Duration::from_secs(10),
            read: Duration::from_secs(5),
        }
    }
}

/// Binds a listener (std, so the caller can bind before any runtime exists).
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Accepts connections on `listener` until the task is dropped.
pub async fn serve(
    listener: std::net::TcpListener,
    table: Table,
    stats: Arc<Stats>,
    limits: Limits,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot serve TCP");
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let row = stats.workers() - 1;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            // Full: closing at once is kinder than queueing (RFC 7766 6.2.2).
            drop(stream);
            continue;
        };
        let (table, stats) = (table.clone(), stats.clone());
        tokio::spawn(async move {
            let worker = Worker::new(row, stats);
            if let Err(e) = connection(stream, peer, table, worker, limits).await {
                tracing::debug!(%peer, error = %e, "TCP connection ended");
            }
            drop(permit);
        });
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    table: Table,
    mut worker: Worker,
    limits: Limits,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let (read, write) = stream.into_split();
    let mut read = BufReader::new(read);
    // Length and message leave in one segment.
    let mut write = BufWriter::new(write);
    let mut query = vec![0u8; MAX_MESSAGE];
    let mut response = Vec::with_capacity(MAX_MESSAGE);
    let client = client_ip(peer);
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(limits.idle, read.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Ok(()),
        }
        let len = u16::from_be_bytes(len) as usize;
        let packet = &mut query[..len];
        tokio::time::timeout(limits.read, read.read_exact(packet))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "query arrived too slowly")
            })??;
        if !worker.answer(&table.load(), packet, client, Transport::Tcp, &mut response) {
            return Ok(());
        }
        let framed = async {
            write
                .write_all(&(response.len() as u16).to_be_bytes())
                .await?;
            write.write_all(&response).await?;
            write.flush().await
        };
        tokio::time::timeout(limits.read, framed)
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "client reads too slowly")
            })??;
    }
}
