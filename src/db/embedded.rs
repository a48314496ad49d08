//! The embedded private Postgres cluster: started from the installed server binaries when no
//! `DATABASE_URL` is configured.
//!
//! Layout under `<state_dir>/pg`: `data/` (PGDATA), `run/` (the unix socket; no TCP listener, so no
//! port can clash), `leases/` (one file per aisle process using the cluster), `postgres.log`, `lock`.
//! Invariants: open and close hold an exclusive `flock` on `lock`, so concurrent aisle processes never
//! race initdb or start/stop; the last process to close stops the server; when aisle runs as root,
//! every server binary runs as the `postgres` system user, which owns `<state_dir>/pg`.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nix::fcntl::{Flock, FlockArg};
use nix::unistd::{Gid, Pid, Uid, User};
use sqlx::postgres::PgConnectOptions;

use super::error::DbError;

/// The superuser that initdb creates; connections authenticate by the socket directory's permissions.
const SUPERUSER: &str = "aisle";
const PORT: u16 = 5432;
/// `sun_path` holds 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;

/// A running private cluster, leased by this process until [`EmbeddedCluster::close`].
#[derive(Debug)]
pub struct EmbeddedCluster {
    root: PathBuf,
    bin_dir: PathBuf,
    socket_dir: PathBuf,
    owner: Option<User>,
    lease: PathBuf,
    closed: bool,
}

impl EmbeddedCluster {
    /// Initialises the cluster under `<state_dir>/pg` if needed, starts it unless it is running, and
    /// records this process as a user. Blocking: call it from `spawn_blocking` in async code.
    pub fn open(state_dir: &Path) -> Result<Self, DbError> {
        let bin_dir = find_bin_dir()?;
        let owner = server_owner()?;
        let root = prepare_root(state_dir, owner.as_ref())?;
        let socket_dir = socket_dir_for(&root, owner.as_ref())?;
        let lock = lock_file(&root)?;
        let _guard = Flock::lock(lock, FlockArg::LockExclusive)
            .map_err(|(_, e)| DbError::io("locking the embedded cluster", e.into()))?;

        let mut cluster = Self {
            lease: root.join("leases").join(lease_name()),
            root,
            bin_dir,
            socket_dir,
            owner,
            // Not leased until the lease file exists: an early error must not run `release`.
            closed: true,
        };
        if !cluster.data_dir().join("PG_VERSION").exists() {
            cluster.initdb()?;
        }
        if !cluster.is_running()? {
            cluster.start()?;
        }
        File::create(&cluster.lease).map_err(|e| DbError::io("writing the cluster lease", e))?;
        cluster.closed = false;
        Ok(cluster)
    }

    /// Connection options for `database` over the cluster's unix socket.
    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .host(&self.socket_dir.to_string_lossy())
            .port(PORT)
            .username(SUPERUSER)
            .database(database)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// Whether a server is running on this cluster's data directory.
    pub fn is_running(&self) -> Result<bool, DbError> {
        let out = self.pg_command("pg_ctl", &["status", "-D"], Some(&self.data_dir()))?;
        // pg_ctl status: 0 running, 3 not running, 4 no usable data directory.
        Ok(out.status.code() == Some(0))
    }

    /// Releases this process's lease and stops the server when no other live aisle process uses it.
    pub fn close(mut self) -> Result<(), DbError> {
        self.release()
    }

    fn release(&mut self) -> Result<(), DbError> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        let lock = lock_file(&self.root)?;
        let _guard = Flock::lock(lock, FlockArg::LockExclusive)
            .map_err(|(_, e)| DbError::io("locking the embedded cluster", e.into()))?;
        let _ = fs::remove_file(&self.lease);
        if live_leases(&self.root.join("leases"))? == 0 && self.is_running()? {
            tracing::info!(data_dir = %self.data_dir().display(), "stopping the embedded Postgres cluster");
            let out = self.pg_command(
                "pg_ctl",
                &["stop", "-m", "fast", "-w", "-D"],
                Some(&self.data_dir()),
            )?;
            check(&out, "pg_ctl stop")?;
        }
        Ok(())
    }

    fn initdb(&self) -> Result<(), DbError> {
        tracing::info!(data_dir = %self.data_dir().display(), "initialising the embedded Postgres cluster");
        let out = self.pg_command(
            "initdb",
            &[
                "-U",
                SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-instructions",
                "-D",
            ],
            Some(&self.data_dir()),
        )?;
        check(&out, "initdb")
    }

    fn start(&self) -> Result<(), DbError> {
        tracing::info!(socket_dir = %self.socket_dir.display(), "starting the embedded Postgres cluster");
        let sock = self.socket_dir.to_string_lossy();
        let opts =
            format!("-c listen_addresses='' -c port={PORT} -c unix_socket_directories='{sock}'");
        let log = self.root.join("postgres.log");
        let log = log.to_string_lossy();
        let args = ["start", "-w", "-t", "60", "-l", &log, "-o", &opts, "-D"];
        let out = self.pg_command("pg_ctl", &args, Some(&self.data_dir()))?;
        check(&out, "pg_ctl start").map_err(|e| match e {
            DbError::Command { command, detail } => DbError::Command {
                command,
                detail: format!("{detail}\n(see {log})"),
            },
            other => other,
        })
    }

    fn pg_command(
        &self,
        program: &str,
        args: &[&str],
        path: Option<&Path>,
    ) -> Result<Output, DbError> {
        let mut cmd = Command::new(self.bin_dir.join(program));
        cmd.args(args);
        if let Some(path) = path {
            cmd.arg(path);
        }
        cmd.env_remove("PGDATA").env("LC_ALL", "C");
        if let Some(user) = &self.owner {
            cmd.uid(user.uid.as_raw())
                .gid(user.gid.as_raw())
                .env("HOME", &user.dir);
        }
        cmd.output()
            .map_err(|e| DbError::io(&format!("running {program}"), e))
    }
}

impl Drop for EmbeddedCluster {
    fn drop(&mut self) {
        if let Err(e) = self.release() {
            tracing::warn!(error = %e, "could not release the embedded Postgres cluster");
        }
    }
}

/// Finds the Postgres server binaries: `pg_config --bindir`, then the newest
/// `/usr/lib/postgresql/*/bin`, then `PATH`.
pub fn find_bin_dir() -> Result<PathBuf, DbError> {
    let has_server = |dir: &Path| dir.join("pg_ctl").is_file() && dir.join("initdb").is_file();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_server(&dir) {
            return Ok(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, dir)| has_server(dir))
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Ok(dir);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .find(|dir| has_server(dir))
        .ok_or(DbError::NoServerBinaries)
}

/// The `postgres` system user when running as root (the server refuses to run as root).
fn server_owner() -> Result<Option<User>, DbError> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    match User::from_name("postgres") {
        Ok(Some(user)) => Ok(Some(user)),
        _ => Err(DbError::NoPostgresUser),
    }
}

/// Creates `<state_dir>/pg` and returns it. As root, when the `postgres` user cannot reach that
/// path (a checkout under a private home directory), the cluster moves to a per-path directory
/// under `/var/lib/aisle` instead of failing, and says so.
fn prepare_root(state_dir: &Path, owner: Option<&User>) -> Result<PathBuf, DbError> {
    let root = make_root(state_dir, owner)?;
    let Some(user) = owner else { return Ok(root) };
    if server_can_write(&root, user)? {
        return Ok(root);
    }
    let fallback = Path::new(FALLBACK_STATE_DIR).join(format!("{:016x}", path_hash(&root)));
    tracing::warn!(
        unreachable = %root.display(),
        using = %fallback.display(),
        "the postgres user cannot reach the state dir; keeping the embedded cluster elsewhere"
    );
    let moved = make_root(&fallback, owner)?;
    if server_can_write(&moved, user)? {
        Ok(moved)
    } else {
        Err(DbError::Unreachable(root))
    }
}

/// Where root's embedded clusters go when the configured state dir is out of the server's reach.
const FALLBACK_STATE_DIR: &str = "/var/lib/aisle";

fn make_root(state_dir: &Path, owner: Option<&User>) -> Result<PathBuf, DbError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(state_dir)
        .map_err(|e| DbError::io(&format!("creating {}", state_dir.display()), e))?;
    let state_dir = state_dir
        .canonicalize()
        .map_err(|e| DbError::io(&format!("resolving {}", state_dir.display()), e))?;
    let root = state_dir.join("pg");
    for dir in [root.clone(), root.join("leases"), root.join("run")] {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| DbError::io(&format!("creating {}", dir.display()), e))?;
    }
    if let Some(user) = owner {
        chown_tree(&root, user.uid, user.gid)?;
    }
    Ok(root)
}

fn server_can_write(root: &Path, user: &User) -> Result<bool, DbError> {
    Command::new("test")
        .args(["-w".as_ref(), root.as_os_str()])
        .uid(user.uid.as_raw())
        .gid(user.gid.as_raw())
        .status()
        .map(|s| s.success())
        .map_err(|e| DbError::io("checking the postgres user's access", e))
}

fn path_hash(path: &Path) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    path.hash(&mut h);
    h.finish()
}

fn chown_tree(path: &Path, uid: Uid, gid: Gid) -> Result<(), DbError> {
    let meta = fs::symlink_metadata(path).map_err(|e| DbError::io("reading the cluster dir", e))?;
    if std::os::unix::fs::MetadataExt::uid(&meta) != uid.as_raw() {
        nix::unistd::chown(path, Some(uid), Some(gid))
            .map_err(|e| DbError::io(&format!("chown {}", path.display()), e.into()))?;
    }
    if meta.is_dir() && path.file_name().is_some_and(|n| n != "data") {
        for entry in fs::read_dir(path).map_err(|e| DbError::io("reading the cluster dir", e))? {
            let entry = entry.map_err(|e| DbError::io("reading the cluster dir", e))?;
            chown_tree(&entry.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// `<root>/run`, or a short per-cluster directory under /tmp when that path is too long for a socket.
fn socket_dir_for(root: &Path, owner: Option<&User>) -> Result<PathBuf, DbError> {
    let preferred = root.join("run");
    let socket_len = preferred.as_os_str().len() + "/.s.PGSQL.5432".len();
    if socket_len <= MAX_SOCKET_PATH {
        return Ok(preferred);
    }
    let dir = std::env::temp_dir().join(format!("aisle-pg-{:016x}", path_hash(root)));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| DbError::io(&format!("creating {}", dir.display()), e))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| DbError::io("securing the socket dir", e))?;
    if let Some(user) = owner {
        nix::unistd::chown(&dir, Some(user.uid), Some(user.gid))
            .map_err(|e| DbError::io("chown the socket dir", e.into()))?;
    }
    Ok(dir)
}

fn lock_file(root: &Path) -> Result<File, DbError> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(root.join("lock"))
        .map_err(|e| DbError::io("opening the cluster lock", e))
}

/// `<pid>-<n>`: unique per handle, so one process may hold several (tests do).
fn lease_name() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{n}", std::process::id())
}

/// Counts leases whose process is alive, removing the ones left by processes that died.
fn live_leases(dir: &Path) -> Result<usize, DbError> {
    let mut live = 0;
    for entry in fs::read_dir(dir).map_err(|e| DbError::io("reading leases", e))? {
        let entry = entry.map_err(|e| DbError::io("reading leases", e))?;
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|s| s.split('-').next())
            .and_then(|s| s.parse::<i32>().ok());
        let alive = pid.is_some_and(|pid| {
            !matches!(
                nix::sys::signal::kill(Pid::from_raw(pid), None),
                Err(nix::errno::Errno::ESRCH)
            )
        });
        if alive {
            live += 1;
        } else {
            let _ = fs::remove_file(entry.path());
        }
    }
    Ok(live)
}

fn check(out: &Output, command: &str) -> Result<(), DbError> {
    if out.status.success() {
        return Ok(());
    }
    let mut detail = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    if detail.is_empty() {
        detail = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    }
    Err(DbError::Command {
        command: command.to_owned(),
        detail,
    })
}
