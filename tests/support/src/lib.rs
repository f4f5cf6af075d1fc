//! Test equipment for dbmazz: real services, started per test on random loopback
//! ports, private to the test and torn down on drop (also when the test panics).
//!
//! | service    | what runs                                             |
//! |------------|-------------------------------------------------------|
//! | PostgreSQL | an initdb'd throw-away cluster with `wal_level=logical` |
//! | MariaDB    | a throw-away datadir (`mariadb-install-db`)            |
//! | Redis      | `redis-server` without persistence                     |
//!
//! Nothing here touches the machine's shared services on the standard ports, and
//! every process started is stopped by its own pid.

pub mod compare;
pub mod mariadb;
pub mod postgres;
pub mod process;
pub mod redis;

pub use mariadb::MariaDb;
pub use postgres::{PgCluster, PgConfig, StopMode};
pub use process::{free_port, ServiceError};
pub use redis::RedisServer;
