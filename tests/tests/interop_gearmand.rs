//! The interop scenarios of `gearman_tests::interop` against the C gearmand 1.1.20, proving
//! they test behaviour gearmand shares; `server/tests/interop_peers.rs` runs the same
//! scenarios against gearmand-rs.

use gearman_tests::{interop, ServerProcess};

#[test]
fn gearman_cli_client_and_worker() {
    interop::gearman_cli_client_and_worker(&ServerProcess::gearmand(&[]));
}

#[test]
fn gearadmin_reads_admin_replies() {
    interop::gearadmin_reads_admin_replies(&ServerProcess::gearmand(&[]), "1.1.20+ds");
}

#[test]
fn gearadmin_manages_jobs_and_functions() {
    interop::gearadmin_manages_jobs_and_functions(&ServerProcess::gearmand(&[]), "ERROR");
}

#[test]
fn php_pecl_client_and_worker() {
    interop::php_pecl_client_and_worker(&ServerProcess::gearmand(&[]));
}

#[test]
fn perl_gearman_client_and_worker() {
    interop::perl_gearman_client_and_worker(&ServerProcess::gearmand(&[]));
}

#[test]
fn python_gear_client_and_worker() {
    interop::python_gear_client_and_worker(&ServerProcess::gearmand(&[]));
}
