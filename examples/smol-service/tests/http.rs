//! The service started as a program and driven over HTTP, on SQLite and on PostgreSQL.

#[test]
fn the_api_works_over_http_on_sqlite_and_postgres() {
    service_check::check_service(env!("CARGO_BIN_EXE_smol-service"));
}
