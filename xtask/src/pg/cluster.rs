//! A throwaway PostgreSQL cluster: `initdb` into `target/anysql-pg`, started on a free loopback port,
//! always stopped again (also on error and on panic, through `Drop`).
//!
//! PostgreSQL refuses to run as root. Under root (CI containers) the server programs run as the `postgres`
//! user through `runuser`, and the cluster directory is handed to that user.
//!
//! A run killed outright (SIGKILL, Ctrl-C) cannot stop its server. The next run finds it through
//! `postmaster.pid`, stops it and starts afresh.

use std::env;
use std::fs::{self, File, TryLockError};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use xshell::{cmd, Cmd, Shell};

use super::url::socket_path;
use crate::process;

/// The account the server runs as when xtask runs as root.
const SERVER_USER: &str = "postgres";
/// Unix socket paths are limited to 108 bytes (`sun_path`), terminator included.
const MAX_SOCKET_PATH: usize = 107;

/// A directory holding `initdb` and `pg_ctl` (and, next to them, `postgres`, `createdb`, `psql`).
#[derive(Debug, Clone)]
pub struct ServerBinaries {
    dir: PathBuf,
}

impl ServerBinaries {
    /// Looks on PATH first (following symlinks, so the other programs come from the same installation),
    /// then in `/usr/lib/postgresql/<version>/bin`, highest version first.
    pub fn find() -> Option<ServerBinaries> {
        let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
        if let Some(initdb) = on_path("initdb") {
            let real = fs::canonicalize(&initdb).unwrap_or(initdb);
            if let Some(dir) = real.parent().filter(|dir| has_server(dir)) {
                return Some(ServerBinaries {
                    dir: dir.to_owned(),
                });
            }
        }
        let mut versions: Vec<(Vec<u32>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let version = version_key(entry.file_name().to_str()?)?;
                Some((version, entry.path().join("bin")))
            })
            .filter(|(_, dir)| has_server(dir))
            .collect();
        versions.sort();
        versions.pop().map(|(_, dir)| ServerBinaries { dir })
    }

    /// The directory holding the server binaries.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A client or server program: from this installation if it has it, else from PATH.
    pub fn tool(&self, name: &str) -> PathBuf {
        let here = self.dir.join(name);
        if here.is_file() {
            return here;
        }
        on_path(name).unwrap_or(here)
    }
}

/// `"15"` → `[15]`, `"9.6"` → `[9, 6]`; anything else is not a version directory.
fn version_key(name: &str) -> Option<Vec<u32>> {
    name.split('.').map(|part| part.parse().ok()).collect()
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A running throwaway cluster. Dropping it stops the server.
#[derive(Debug)]
pub struct Cluster {
    sh: Shell,
    binaries: ServerBinaries,
    base: PathBuf,
    data: PathBuf,
    port: u16,
    /// Where the server's Unix socket is; `None` if the path would be too long for one.
    socket_dir: Option<PathBuf>,
    /// `Some("postgres")` when xtask runs as root.
    run_as: Option<&'static str>,
    stopped: bool,
    /// Held for the cluster's lifetime: two runs in one workspace would otherwise wipe each other's
    /// cluster as stale. Declared last, so it is released only after `drop` has stopped the server.
    _lock: File,
}

impl Cluster {
    /// Creates, starts and fills (database `test`) a fresh cluster under `<target_dir>/anysql-pg`.
    pub fn start(binaries: ServerBinaries, target_dir: &Path) -> Result<Cluster> {
        Self::start_in(binaries, target_dir, "anysql-pg", &no_settings, None)
    }

    /// Starts a streaming standby of `primary` under `<target_dir>/anysql-pg`: a copy made with
    /// `pg_basebackup -R` (which writes `standby.signal` and the `primary_conninfo`), on a port of
    /// its own. It serves reads (`hot_standby`) and `pg_is_in_recovery()` is true there until
    /// [`promote`](Self::promote).
    pub fn start_standby(
        binaries: ServerBinaries,
        target_dir: &Path,
        primary: &Cluster,
    ) -> Result<Cluster> {
        Self::start_in(
            binaries,
            target_dir,
            "anysql-pg",
            &no_settings,
            Some(primary.port),
        )
    }

    /// [`start`](Self::start) in `<target_dir>/<name>` (with its own lock, so that it runs beside
    /// the others), calling `prepare(base, data)` after `initdb`: it may write files (under
    /// `base`, handed to the server user afterwards) and returns settings for `postgresql.conf`.
    pub fn start_with(
        binaries: ServerBinaries,
        target_dir: &Path,
        name: &str,
        prepare: &dyn Fn(&Path, &Path) -> Result<String>,
    ) -> Result<Cluster> {
        Self::start_in(binaries, target_dir, name, prepare, None)
    }

    /// A fresh cluster in `<target_dir>/<name>`, or with `standby_of`, a standby of the primary on
    /// that port.
    fn start_in(
        binaries: ServerBinaries,
        target_dir: &Path,
        name: &str,
        prepare: &dyn Fn(&Path, &Path) -> Result<String>,
        standby_of: Option<u16>,
    ) -> Result<Cluster> {
        let sh = Shell::new()?;
        let run_as = if running_as_root(&sh)? {
            ensure!(
                cmd!(sh, "id -u {SERVER_USER}").quiet().ignore_stdout().ignore_stderr().run().is_ok(),
                "xtask runs as root, PostgreSQL refuses to, and there is no `{SERVER_USER}` user to run it as"
            );
            ensure!(
                on_path("runuser").is_some(),
                "xtask runs as root and needs `runuser` to start PostgreSQL"
            );
            Some(SERVER_USER)
        } else {
            None
        };

        let lock = lock_cluster_dir(target_dir, name)?;
        let mut base = target_dir.join(name);
        prepare_base(&sh, &binaries, &base, run_as)?;
        if run_as.is_some() && !server_user_can_write(&sh, &base) {
            // The workspace sits somewhere the server user cannot reach (say under /root). The name is
            // per workspace, so that the lock above also covers the fallback directory.
            let mut hasher = DefaultHasher::new();
            target_dir.hash(&mut hasher);
            let fallback = env::temp_dir().join(format!("{name}-{:016x}", hasher.finish()));
            println!(
                "PostgreSQL: `{SERVER_USER}` cannot write {}; using {} instead",
                base.display(),
                fallback.display()
            );
            fs::remove_dir_all(&base)
                .with_context(|| format!("failed to remove {}", base.display()))?;
            base = fallback;
            prepare_base(&sh, &binaries, &base, run_as)?;
            ensure!(
                server_user_can_write(&sh, &base),
                "`{SERVER_USER}` cannot write {}",
                base.display()
            );
        }
        sh.change_dir(&base);

        // From here on the guard exists, so every early return below stops whatever did start.
        let mut cluster = Cluster {
            sh,
            binaries,
            data: base.join("data"),
            base,
            port: 0,
            socket_dir: None,
            run_as,
            stopped: false,
            _lock: lock,
        };
        match standby_of {
            None => {
                cluster.init()?;
                let settings = prepare(&cluster.base, &cluster.data)?;
                append(&cluster.data.join("postgresql.conf"), &settings)?;
                if let Some(user) = cluster.run_as {
                    let base = &cluster.base;
                    run_checked(cmd!(cluster.sh, "chown -R {user} {base}"))?;
                }
                cluster.launch()?;
                cluster.create_database()?;
            }
            Some(primary_port) => {
                cluster.base_backup(primary_port)?;
                cluster.launch()?;
            }
        }
        Ok(cluster)
    }

    /// The URL the cells connect with.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/test", self.port)
    }

    /// The TCP port the server listens on (loopback only).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the server's Unix socket, if it has one.
    pub fn socket_dir(&self) -> Option<&Path> {
        self.socket_dir.as_deref()
    }

    /// The cluster's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The server binaries this cluster runs.
    pub fn binaries(&self) -> &ServerBinaries {
        &self.binaries
    }

    fn init(&mut self) -> Result<()> {
        let initdb = server_cmd(&self.sh, self.run_as, &self.binaries.tool("initdb"))
            .arg("-D")
            .arg(&self.data);
        run_checked(initdb.args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]))?;

        // Settings go into the configuration file rather than `pg_ctl -o`, which pg_ctl hands to a shell.
        let socket_dir = self.base.join("sock");
        let socket_dirs = if socket_path(&socket_dir, 65535).as_os_str().len() <= MAX_SOCKET_PATH {
            let quoted = socket_dir.to_string_lossy().replace('\'', "''");
            self.socket_dir = Some(socket_dir);
            quoted
        } else {
            // Too long for a socket path: TCP only, and the Unix-socket tests will say so.
            String::new()
        };
        let settings = format!(
            "\n# Added by `cargo xtask`: a throwaway cluster for the test suite; durability is not wanted.\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{socket_dirs}'\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n"
        );
        append(&self.data.join("postgresql.conf"), &settings)
    }

    /// Copies the primary on `primary_port` into the data directory, as a standby of it. The
    /// checkpoint the copy starts from is taken at once (`--checkpoint=fast`), not spread over
    /// the primary's checkpoint interval.
    fn base_backup(&mut self, primary_port: u16) -> Result<()> {
        let port = primary_port.to_string();
        let backup = server_cmd(&self.sh, self.run_as, &self.binaries.tool("pg_basebackup"))
            .args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "-D"])
            .arg(&self.data);
        run_checked(backup.args(["-R", "-X", "stream", "--checkpoint=fast", "--no-sync"]))?;
        // The copy has the primary's settings: its own socket directory, then (in `launch`) port.
        let socket_dir = self.base.join("sock");
        let socket_dirs = if socket_path(&socket_dir, 65535).as_os_str().len() <= MAX_SOCKET_PATH {
            let quoted = socket_dir.to_string_lossy().replace('\'', "''");
            self.socket_dir = Some(socket_dir);
            quoted
        } else {
            String::new()
        };
        append(
            &self.data.join("postgresql.conf"),
            &format!(
                "\n# Added by `cargo xtask`: a streaming standby of the cluster on port {primary_port}.\n\
                 unix_socket_directories = '{socket_dirs}'\n\
                 hot_standby = on\n"
            ),
        )
    }

    /// Promotes a standby to a primary (`pg_ctl promote`), waiting until it accepts writes.
    pub fn promote(&mut self) -> Result<()> {
        ensure!(!self.stopped, "the throwaway cluster was already stopped");
        let pg_ctl = self.binaries.tool("pg_ctl");
        let command = server_cmd(&self.sh, self.run_as, &pg_ctl)
            .arg("-D")
            .arg(&self.data);
        run_checked(command.args(["-w", "-t", "60", "promote"]))
    }

    /// Starts the server on a free port, retrying with another port if someone took it in between.
    fn launch(&mut self) -> Result<()> {
        const ATTEMPTS: usize = 3;
        let pg_ctl = self.binaries.tool("pg_ctl");
        let log = self.log_file();
        for attempt in 1..=ATTEMPTS {
            self.port = free_port()?;
            // The last `port` line in the file wins.
            append(
                &self.data.join("postgresql.conf"),
                &format!("port = {}\n", self.port),
            )?;
            let command = server_cmd(&self.sh, self.run_as, &pg_ctl)
                .arg("-D")
                .arg(&self.data)
                .arg("-l")
                .arg(&log);
            match run_checked(command.args(["-w", "-t", "60", "start"])) {
                Ok(()) => return Ok(()),
                Err(error) => {
                    let log_text = fs::read_to_string(&log).unwrap_or_default();
                    if attempt < ATTEMPTS && log_text.contains("could not bind") {
                        println!("PostgreSQL: port {} was taken, trying another", self.port);
                        continue;
                    }
                    bail!(
                        "{error:#}\nserver log ({}):\n{}",
                        log.display(),
                        tail(&log_text, 30)
                    );
                }
            }
        }
        unreachable!("the last attempt returns")
    }

    fn create_database(&self) -> Result<()> {
        let createdb = self.binaries.tool("createdb");
        let port = self.port.to_string();
        run_checked(cmd!(
            self.sh,
            "{createdb} -h 127.0.0.1 -p {port} -U postgres test"
        ))
    }

    /// Restarts the server on the same port and data, as an administrator or a crash recovery
    /// would: every session is cut, and the server accepts connections again when this returns.
    pub fn restart(&mut self) -> Result<()> {
        ensure!(!self.stopped, "the throwaway cluster was already stopped");
        let pg_ctl = self.binaries.tool("pg_ctl");
        let log = self.log_file();
        let command = server_cmd(&self.sh, self.run_as, &pg_ctl)
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&log);
        run_checked(command.args(["-m", "fast", "-w", "-t", "60", "restart"]))
    }

    /// Stops the server and checks that none of its processes is left. Idempotent.
    pub fn stop(&mut self) -> Result<()> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let data = self.data.clone();
        let pid = postmaster_pid(&data);
        let was_started = data.join("postmaster.pid").exists();
        if was_started {
            let pg_ctl = self.binaries.tool("pg_ctl");
            let stop = |mode: &str| {
                let command = server_cmd(&self.sh, self.run_as, &pg_ctl)
                    .arg("-D")
                    .arg(&data);
                run_checked(command.args(["-m", mode, "-w", "-t", "30", "stop"]))
            };
            if let Err(error) = stop("fast") {
                println!("PostgreSQL: a fast stop failed ({error:#}); trying an immediate stop");
                stop("immediate")?;
            }
        }
        wait_until_gone(pid, &data)?;
        if was_started {
            println!("PostgreSQL: stopped the throwaway cluster; no server process is left");
        }
        // The log stays for post-mortems; the data directory is tens of megabytes of nothing.
        let _ = fs::remove_dir_all(&data);
        Ok(())
    }

    fn log_file(&self) -> PathBuf {
        self.base.join("postgres.log")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            eprintln!("warning: stopping the throwaway PostgreSQL cluster failed: {error:#}");
        }
    }
}

/// Takes `<target>/<name>.lock`, waiting for another xtask run that holds it. The kernel releases it
/// when a run dies, so a killed run never blocks the next one.
fn lock_cluster_dir(target_dir: &Path, name: &str) -> Result<File> {
    fs::create_dir_all(target_dir)
        .with_context(|| format!("failed to create {}", target_dir.display()))?;
    let path = target_dir.join(format!("{name}.lock"));
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("failed to open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            println!(
                "PostgreSQL: waiting for another cargo xtask run to release {}",
                path.display()
            );
            file.lock()
                .with_context(|| format!("failed to lock {}", path.display()))?;
        }
        Err(TryLockError::Error(error)) => {
            return Err(error).with_context(|| format!("failed to lock {}", path.display()))
        }
    }
    Ok(file)
}

/// No extra `postgresql.conf` settings, for [`Cluster::start`].
fn no_settings(_base: &Path, _data: &Path) -> Result<String> {
    Ok(String::new())
}

/// Runs `program` as the server user: `runuser -u postgres -- program` under root, else directly.
fn server_cmd<'a>(sh: &'a Shell, run_as: Option<&str>, program: &Path) -> Cmd<'a> {
    match run_as {
        Some(user) => cmd!(sh, "runuser -u {user} -- {program}"),
        None => cmd!(sh, "{program}"),
    }
}

/// Clears what a previous run left (stopping its server if it still runs) and creates the directories.
fn prepare_base(
    sh: &Shell,
    binaries: &ServerBinaries,
    base: &Path,
    run_as: Option<&'static str>,
) -> Result<()> {
    let data = base.join("data");
    if data.join("postmaster.pid").exists() {
        println!(
            "PostgreSQL: stopping a server left by an earlier run in {}",
            data.display()
        );
        let command = server_cmd(sh, run_as, &binaries.tool("pg_ctl"))
            .arg("-D")
            .arg(&data);
        // Best effort: the pid file may be stale, in which case pg_ctl says so and nothing runs.
        let _ = run_checked(command.args(["-m", "immediate", "-w", "-t", "30", "stop"]));
        let leftover = processes_using(&data);
        ensure!(
            leftover.is_empty(),
            "PostgreSQL processes {leftover:?} from an earlier run still use {}; stop them first",
            data.display()
        );
    }
    if base.exists() {
        fs::remove_dir_all(base)
            .with_context(|| format!("failed to remove the stale {}", base.display()))?;
    }
    fs::create_dir_all(base.join("sock"))
        .with_context(|| format!("failed to create {}", base.display()))?;
    if let Some(user) = run_as {
        run_checked(cmd!(sh, "chown -R {user} {base}"))?;
    }
    Ok(())
}

fn server_user_can_write(sh: &Shell, dir: &Path) -> bool {
    cmd!(sh, "runuser -u {SERVER_USER} -- test -w {dir}")
        .quiet()
        .run()
        .is_ok()
}

fn running_as_root(sh: &Shell) -> Result<bool> {
    let uid = cmd!(sh, "id -u")
        .quiet()
        .read()
        .context("failed to run `id -u`")?;
    Ok(uid.trim() == "0")
}

/// A loopback port nobody listens on right now.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("failed to find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Prints the command, runs it with output captured, and fails with that output if it fails.
fn run_checked(command: Cmd<'_>) -> Result<()> {
    let display = command.to_string();
    println!("$ {display}");
    let captured = process::run_captured(command, false)?;
    if !captured.success {
        bail!(
            "`{display}` failed ({}):\n{}",
            captured.status,
            captured.output.trim_end()
        );
    }
    Ok(())
}

fn append(path: &Path, text: &str) -> Result<()> {
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(path)
        .with_context(|| format!("failed to open {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("failed to write {}", path.display()))
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The first line of `postmaster.pid`.
fn postmaster_pid(data: &Path) -> Option<u32> {
    fs::read_to_string(data.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Waits up to ten seconds for the postmaster and anything else started on `data` to exit.
fn wait_until_gone(pid: Option<u32>, data: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut alive = processes_using(data);
        if let Some(pid) = pid.filter(|&pid| is_alive(pid) && !alive.contains(&pid)) {
            alive.push(pid);
        }
        if alive.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "PostgreSQL processes {alive:?} from {} are still running",
                data.display()
            );
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Whether `pid` is a live (not zombie) process. A postmaster is reparented when pg_ctl exits, and in a
/// container whose init does not reap, it lingers as a zombie after exiting.
fn is_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => process_state(&stat).is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

/// The state letter of a `/proc/<pid>/stat` line; the command name before it may contain spaces and `)`.
fn process_state(stat: &str) -> Option<char> {
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Live processes whose command line names `data`: a postmaster runs as `postgres -D <data>`.
fn processes_using(data: &Path) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let needle = data.as_os_str().as_encoded_bytes();
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let mentions_data = cmdline.split(|&b| b == 0).any(|arg| arg == needle);
            mentions_data && is_alive(pid)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_directories() {
        assert_eq!(version_key("15"), Some(vec![15]));
        assert_eq!(version_key("9.6"), Some(vec![9, 6]));
        assert_eq!(version_key("common"), None);
        let mut keys = [
            version_key("9.6").unwrap(),
            version_key("16").unwrap(),
            version_key("10").unwrap(),
        ];
        keys.sort();
        assert_eq!(keys.last(), Some(&vec![16]));
    }

    #[test]
    fn stat_state_survives_odd_names() {
        assert_eq!(process_state("42 (postgres) S 1 42 42 0"), Some('S'));
        assert_eq!(process_state("42 (a) b) Z 1 42"), Some('Z'));
        assert_eq!(process_state("garbage"), None);
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }

    #[test]
    fn our_own_process_is_alive() {
        assert!(is_alive(std::process::id()));
    }
}
