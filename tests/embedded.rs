//! The embedded private Postgres cluster: initialised on first use, reused across runs, shared by
//! concurrent users, stopped by the last one out.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;

use aisle::db::EmbeddedCluster;
use sqlx::{ConnectOptions, Connection};

fn state_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    // When the tests run as root, the server runs as `postgres`, which must reach the directory.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

async fn query_one(cluster: &EmbeddedCluster, sql: &str) -> i64 {
    let mut conn = cluster.connect_options("postgres").connect().await.unwrap();
    let v: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    v
}

#[tokio::test]
async fn the_cluster_starts_is_shared_reused_and_stopped_by_the_last_user() {
    let dir = state_dir();
    let path = dir.path().to_owned();
    let first = tokio::task::spawn_blocking({
        let path = path.clone();
        move || EmbeddedCluster::open(&path)
    })
    .await
    .unwrap()
    .unwrap();
    assert!(first.is_running().unwrap());
    assert!(path.join("pg/data/PG_VERSION").exists());
    // No TCP listener: the server only has its unix socket.
    let conf: i64 = query_one(
        &first,
        "select count(*) from pg_settings where name = 'listen_addresses' and setting = ''",
    )
    .await;
    assert_eq!(conf, 1);
    let mut conn = first.connect_options("postgres").connect().await.unwrap();
    sqlx::query("create table kept (v int)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("insert into kept values (42)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    // A second user shares the running server.
    let second = EmbeddedCluster::open(&path).unwrap();
    assert_eq!(query_one(&second, "select v::bigint from kept").await, 42);
    first.close().unwrap();
    assert!(
        second.is_running().unwrap(),
        "still leased by the second user"
    );
    second.close().unwrap();

    // Stopped, then reused with its data on the next run.
    let third = EmbeddedCluster::open(&path).unwrap();
    assert_eq!(query_one(&third, "select v::bigint from kept").await, 42);
    // A lease left by a process that died does not keep the server alive.
    std::fs::write(path.join("pg/leases/999999999-0"), b"").unwrap();
    let probe = EmbeddedCluster::open(&path).unwrap();
    third.close().unwrap();
    probe.close().unwrap();
    let after = EmbeddedCluster::open(&path).unwrap();
    // `after` restarted it; closing it must stop it again and clear the stale lease.
    after.close().unwrap();
    assert_eq!(
        std::fs::read_dir(path.join("pg/leases")).unwrap().count(),
        0
    );
}

#[tokio::test]
async fn a_long_state_path_still_gets_a_usable_socket() {
    let dir = state_dir();
    let mut deep = dir.path().to_owned();
    for _ in 0..6 {
        deep.push("a-rather-long-directory-name");
    }
    std::fs::create_dir_all(&deep).unwrap();
    let mut p = dir.path().to_owned();
    for _ in 0..6 {
        p.push("a-rather-long-directory-name");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let cluster = tokio::task::spawn_blocking(move || EmbeddedCluster::open(&deep))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(query_one(&cluster, "select 1::bigint").await, 1);
    cluster.close().unwrap();
}

#[tokio::test]
async fn as_root_a_state_dir_the_server_cannot_reach_moves_to_var_lib() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("not root: the postgres user question does not arise; nothing to check");
        return;
    }
    let private = tempfile::tempdir().unwrap();
    std::fs::set_permissions(private.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let state = private.path().join("state");
    let cluster = tokio::task::spawn_blocking(move || EmbeddedCluster::open(&state))
        .await
        .unwrap()
        .unwrap();
    assert!(
        cluster.data_dir().starts_with("/var/lib/aisle/"),
        "{}",
        cluster.data_dir().display()
    );
    assert_eq!(query_one(&cluster, "select 1::bigint").await, 1);
    let data = cluster.data_dir();
    cluster.close().unwrap();
    std::fs::remove_dir_all(data.parent().unwrap().parent().unwrap()).unwrap();
}
