//! An S3-compatible server for spill tests: `s3s` (the S3 protocol: SigV4
//! authentication, XML, multipart uploads) over `s3s-fs` (objects as files in a
//! temporary directory), served in-process by hyper on a random loopback port.
//!
//! Why in-process s3s rather than `moto[server]`: no Python interpreter or PyPI
//! install is needed, start-up is instantaneous (no process to wait for), the
//! listener is bound to port 0 so there is no port race, and s3s verifies SigV4
//! signatures with the static credentials, so a client that signs wrongly fails
//! here as it would against AWS. What it is not: it does not emulate IAM policies,
//! object versioning or eventual consistency, and it answers path-style requests
//! (`http://127.0.0.1:PORT/bucket/key`), so clients must use path-style addressing.
//! (s3s-fs 0.14 is the last line that builds with the pinned Rust 1.95.)
//!
//! Each server is private to its test and starts with one empty bucket,
//! [`S3Server::bucket`]; [`S3Server::create_bucket`] adds more. The server runs on
//! its own thread and runtime, so it serves sync and async tests alike, and stops on
//! drop (also when the test panics). [`S3Server::stop`] and
//! [`S3Server::start_again`] simulate an outage on the same port with the data kept.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::sync::oneshot;

use crate::process::{temp_dir, ServiceError};

/// Access key id the server accepts.
pub const ACCESS_KEY: &str = "dbmazz-test-access-key";
/// Secret key the server accepts.
pub const SECRET_KEY: &str = "dbmazz-test-secret-key-0123456789";
/// Region to sign requests for (s3s accepts any; clients need one).
pub const REGION: &str = "us-east-1";
/// The bucket every server starts with.
pub const DEFAULT_BUCKET: &str = "dbmazz-test";

/// A running S3-compatible server.
#[derive(Debug)]
pub struct S3Server {
    dir: tempfile::TempDir,
    addr: SocketAddr,
    running: Option<Running>,
}

#[derive(Debug)]
struct Running {
    stop: oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

impl S3Server {
    /// Starts a server on a random loopback port with the bucket [`DEFAULT_BUCKET`].
    pub fn start() -> Result<Self, ServiceError> {
        let dir = temp_dir("dbmazz-s3-")?;
        let mut s = S3Server {
            dir,
            addr: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0).into(),
            running: None,
        };
        s.create_bucket(DEFAULT_BUCKET)?;
        s.spawn()?;
        Ok(s)
    }

    fn spawn(&mut self) -> Result<(), ServiceError> {
        let root = self.dir.path().to_path_buf();
        let want = self.addr;
        let (ready_tx, ready_rx) = mpsc::channel::<Result<SocketAddr, ServiceError>>();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("s3-server-{}", want.port()))
            .spawn(move || serve(root, want, ready_tx, stop_rx))
            .map_err(ServiceError::io("starting the S3 server thread"))?;
        let addr = ready_rx.recv().map_err(|_| ServiceError::Failed {
            what: "starting the S3 server".into(),
            detail: "the server thread exited before listening".into(),
        })??;
        self.addr = addr;
        self.running = Some(Running {
            stop: stop_tx,
            thread,
        });
        Ok(())
    }

    /// The bucket the server started with.
    pub fn bucket(&self) -> &'static str {
        DEFAULT_BUCKET
    }

    /// Creates another (empty) bucket.
    pub fn create_bucket(&self, name: &str) -> Result<(), ServiceError> {
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(ServiceError::Failed {
                what: "creating a bucket".into(),
                detail: format!("invalid bucket name {name:?}"),
            });
        }
        std::fs::create_dir_all(self.dir.path().join(name))
            .map_err(ServiceError::io(format!("creating bucket {name}")))
    }

    /// Listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`: the endpoint URL for clients (path-style).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The standard AWS variables pointing a client at this server (for starting
    /// dbmazz as a process).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_ENDPOINT_URL_S3", self.endpoint()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
        ]
    }

    /// Keys of the objects in `bucket`, sorted (read from the store directly, so a
    /// test can assert on what a client left behind).
    pub fn object_keys(&self, bucket: &str) -> Result<Vec<String>, ServiceError> {
        let root = self.dir.path().join(bucket);
        let mut keys = Vec::new();
        walk(&root, &root, &mut keys)?;
        keys.sort();
        Ok(keys)
    }

    /// The bytes of an object, read from the store directly.
    pub fn object(&self, bucket: &str, key: &str) -> Result<Vec<u8>, ServiceError> {
        let path = self.dir.path().join(bucket).join(key);
        std::fs::read(&path).map_err(ServiceError::io(format!("reading s3://{bucket}/{key}")))
    }

    /// Stops serving (connections are refused); objects are kept.
    pub fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = r.stop.send(());
            let _ = r.thread.join();
        }
    }

    /// Serves again on the same port after [`S3Server::stop`].
    pub fn start_again(&mut self) -> Result<(), ServiceError> {
        if self.running.is_some() {
            return Ok(());
        }
        self.spawn()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), ServiceError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(ServiceError::Io {
                context: format!("listing {}", dir.display()),
                source: e,
            })
        }
    };
    for entry in entries {
        let entry = entry.map_err(ServiceError::io("listing the S3 store"))?;
        let path = entry.path();
        let name = entry.file_name();
        // s3s-fs keeps temporary upload parts as dot files.
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            walk(root, &path, out)?;
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push(rel.to_string_lossy().into_owned());
        }
    }
    Ok(())
}

fn serve(
    root: PathBuf,
    want: SocketAddr,
    ready: mpsc::Sender<Result<SocketAddr, ServiceError>>,
    stop: oneshot::Receiver<()>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(ServiceError::Io {
                context: "building the S3 server runtime".into(),
                source: e,
            }));
            return;
        }
    };
    rt.block_on(async move {
        let fs = match s3s_fs::FileSystem::new(&root) {
            Ok(fs) => fs,
            Err(e) => {
                let _ = ready.send(Err(ServiceError::Failed {
                    what: "opening the S3 store".into(),
                    detail: format!("{e:?}"),
                }));
                return;
            }
        };
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();
        // After a stop the old socket may linger for a moment: retry the same port.
        let mut attempt = 0;
        let listener = loop {
            match tokio::net::TcpListener::bind(want).await {
                Ok(l) => break l,
                Err(_) if attempt < 50 && want.port() != 0 => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => {
                    let _ = ready.send(Err(ServiceError::Io {
                        context: format!("binding the S3 server to {want}"),
                        source: e,
                    }));
                    return;
                }
            }
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => {
                let _ = ready.send(Err(ServiceError::Io {
                    context: "reading the S3 server address".into(),
                    source: e,
                }));
                return;
            }
        };
        let _ = ready.send(Ok(addr));
        let mut stop = stop;
        let mut connections = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                _ = &mut stop => break,
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let service = service.clone();
                    connections.spawn(async move {
                        let _ = auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            }
        }
        // Dropping the tasks closes every open connection: an outage, as intended.
        connections.shutdown().await;
    });
}
