//! Test equipment for dbmazz: real services, started per test on random loopback
//! ports, private to the test and torn down on drop (also when the test panics).
//!
//! | service    | what runs                                             |
//! |------------|-------------------------------------------------------|
//! | PostgreSQL | an initdb'd throw-away cluster with `wal_level=logical` |
//! | MariaDB    | a throw-away datadir (`mariadb-install-db`)            |
//! | Redis      | `redis-server` without persistence                     |
//! | S3         | in-process `s3s` over `s3s-fs`, one bucket per server   |
//! | OTLP       | in-process gRPC collector recording spans and metrics   |
//!
//! [`Stack`] puts PostgreSQL, MariaDB and the StarRocks emulator together: the one
//! stack the end-to-end tests, the chaos harness and the demo/benchmark tools run on.
//! [`engine`] runs dbmazz's engine in-process on it, [`compare`] is the row-by-row
//! oracle, and [`chaos`] the crash and fault harness for dbmazz processes.
//!
//! Nothing here touches the machine's shared services on the standard ports, and
//! every process started is stopped by its own pid.

pub mod chaos;
pub mod compare;
pub mod dbmazz;
pub mod engine;
pub mod mariadb;
pub mod otlp;
pub mod postgres;
pub mod process;
pub mod redis;
pub mod s3;
pub mod stack;

pub use self::dbmazz::DbmazzProcess;
pub use mariadb::MariaDb;
pub use otlp::{OtlpCollector, RecordedMetric, RecordedPoint, RecordedSpan};
pub use postgres::{PgCluster, PgConfig, StopMode};
pub use process::{free_port, ServiceError};
pub use redis::RedisServer;
pub use s3::S3Server;
pub use stack::{set_var, Job, Stack, StackConfig};
