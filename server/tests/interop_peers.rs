//! gearmand-rs driven by real Gearman peers: the gearman CLI, gearadmin, PHP pecl-gearman,
//! Perl Gearman::Client/Worker and Python gear. The scenarios live in
//! `gearman_tests::interop` and also run against the C gearmand
//! (`tests/tests/interop_gearmand.rs`). A missing peer fails the test.

mod common;

use common::Server;
use gearman_tests::interop;

#[test]
fn gearman_cli_client_and_worker() {
    interop::gearman_cli_client_and_worker(&Server::start(&[]));
}

#[test]
fn gearadmin_reads_our_admin_replies() {
    interop::gearadmin_reads_admin_replies(&Server::start(&[]), env!("CARGO_PKG_VERSION"));
}

#[test]
fn gearadmin_manages_jobs_and_functions() {
    interop::gearadmin_manages_jobs_and_functions(&Server::start(&[]), "ERROR");
}

#[test]
fn php_pecl_client_and_worker() {
    interop::php_pecl_client_and_worker(&Server::start(&[]));
}

#[test]
fn perl_gearman_client_and_worker() {
    interop::perl_gearman_client_and_worker(&Server::start(&[]));
}

#[test]
fn python_gear_client_and_worker() {
    interop::python_gear_client_and_worker(&Server::start(&[]));
}
