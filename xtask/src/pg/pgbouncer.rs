//! A throwaway PgBouncer in transaction-pooling mode, in front of the server the PostgreSQL cells
//! use, for the `(pgbouncer)` cells.
//!
//! It listens on a free loopback port (no Unix socket), with a generated configuration in
//! `<target>/anysql-pgbouncer`: `pool_mode = transaction`, `auth_type = trust`, and an
//! `auth_query` through the server's own user, so that the per-test roles the suite creates
//! (each with its schema as `search_path`, since PgBouncer refuses the `options` startup
//! parameter) can log in without being listed anywhere. It never touches a PgBouncer service of
//! the system's, which listens elsewhere (Debian's on 6432) or not at all. PgBouncer refuses to
//! run as root; under root it runs as `postgres`. Dropping it stops it.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use xshell::{cmd, Shell};

use super::url::Endpoint;
use crate::process;

/// The account PgBouncer runs as when xtask runs as root.
const RUN_AS: &str = "postgres";

/// Where the `pgbouncer` program is: on PATH, else Debian's `/usr/sbin/pgbouncer`.
pub fn find() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("pgbouncer"))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| {
        let debian = PathBuf::from("/usr/sbin/pgbouncer");
        debian.is_file().then_some(debian)
    })
}

/// A running PgBouncer; dropping it stops it.
#[derive(Debug)]
pub struct PgBouncer {
    dir: PathBuf,
    port: u16,
    pid: Option<u32>,
}

impl PgBouncer {
    /// Starts `program` in front of the server at `server`, logging in there as `user` (who must
    /// get in without a password) to look the other roles up. Its files go to `<target_dir>/anysql-pgbouncer`.
    pub fn start(
        program: &Path,
        target_dir: &Path,
        server: &Endpoint,
        user: &str,
    ) -> Result<PgBouncer> {
        let sh = Shell::new()?;
        let root = cmd!(sh, "id -u").quiet().read()?.trim() == "0";
        let dir = target_dir.join("anysql-pgbouncer");
        if let Some(pid) = read_pid(&dir.join("pgbouncer.pid")) {
            // Left by a run that was killed outright; ours only if it still runs from this directory.
            if fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains("anysql-pgbouncer"))
            {
                let pid = pid.to_string();
                let _ = cmd!(sh, "kill -TERM {pid}").quiet().run();
                thread::sleep(Duration::from_millis(300));
            }
        }
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).with_context(|| format!("failed to create {}", dir.display()))?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .context("failed to find a free port")?
            .port();
        let (host, server_port) = match server {
            Endpoint::Tcp { host, port } => (host.clone(), *port),
            Endpoint::Socket { dir, port } => (dir.display().to_string(), *port),
        };
        let quoted_user = user.replace('"', "\"\"");
        fs::write(
            dir.join("userlist.txt"),
            format!("\"{quoted_user}\" \"\"\n"),
        )?;
        let config = format!(
            "; Written by `cargo xtask test-matrix`: a throwaway PgBouncer for the (pgbouncer) cells.\n\
             [databases]\n\
             * = host={host} port={server_port}\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             pool_mode = transaction\n\
             auth_type = trust\n\
             auth_file = {dir}/userlist.txt\n\
             auth_user = {user}\n\
             auth_query = SELECT usename, passwd FROM pg_shadow WHERE usename = $1\n\
             max_client_conn = 2000\n\
             default_pool_size = 20\n\
             max_db_connections = 50\n\
             server_idle_timeout = 10\n\
             ignore_startup_parameters = extra_float_digits\n\
             logfile = {dir}/pgbouncer.log\n\
             pidfile = {dir}/pgbouncer.pid\n",
            dir = dir.display(),
        );
        let ini = dir.join("pgbouncer.ini");
        fs::write(&ini, config)?;
        let command = if root {
            let dir = &dir;
            process::run_captured(cmd!(sh, "chown -R {RUN_AS} {dir}"), false)?;
            cmd!(sh, "runuser -u {RUN_AS} -- {program} -d {ini}")
        } else {
            cmd!(sh, "{program} -d {ini}")
        };
        println!("$ {command}");
        let started = process::run_captured(command, false)?;
        let mut bouncer = PgBouncer {
            dir: dir.clone(),
            port,
            pid: None,
        };
        if !started.success {
            bail!(
                "PgBouncer did not start ({}):\n{}\n{}",
                started.status,
                started.output.trim_end(),
                bouncer.log_tail()
            );
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            bouncer.pid = read_pid(&dir.join("pgbouncer.pid"));
            if bouncer.pid.is_some() && TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(bouncer);
            }
            if Instant::now() >= deadline {
                bail!(
                    "PgBouncer did not listen on 127.0.0.1:{port} within 10 s:\n{}",
                    bouncer.log_tail()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A URL for `dbname` through this PgBouncer, without a user: `postgres://127.0.0.1:<port>/<dbname>`.
    pub fn url(&self, dbname: &str) -> String {
        format!("postgres://127.0.0.1:{}/{dbname}", self.port)
    }

    fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Stops PgBouncer (SIGTERM: at once, closing every connection) and waits until it is gone.
    pub fn stop(&mut self) -> Result<()> {
        let Some(pid) = self.pid.take() else {
            return Ok(());
        };
        let sh = Shell::new()?;
        let shown = pid.to_string();
        let _ = cmd!(sh, "kill -TERM {shown}").quiet().ignore_stderr().run();
        let deadline = Instant::now() + Duration::from_secs(10);
        while is_running(pid) {
            ensure!(
                Instant::now() < deadline,
                "PgBouncer (pid {pid}) is still running 10 s after SIGTERM"
            );
            thread::sleep(Duration::from_millis(50));
        }
        println!("PgBouncer: stopped");
        Ok(())
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            eprintln!("warning: stopping PgBouncer failed: {error:#}");
        }
    }
}

fn read_pid(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether `pid` runs and is not a zombie.
fn is_running(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X')
    })
}
