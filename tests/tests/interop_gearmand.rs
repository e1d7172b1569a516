//! The interop scenarios of `gearman_tests::interop` against the C gearmand 1.1.20, proving
//! they test behaviour gearmand shares; `server/tests/interop_peers.rs` runs the same
//! scenarios against gearmand-rs.

use gearman_tests::{hostile, interop, options, ServerProcess};

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

#[test]
fn hostile_garbage_bytes_close_that_connection_only() {
    hostile::garbage_bytes_close_that_connection_only(&ServerProcess::gearmand(&[]));
}

#[test]
fn hostile_text_garbage_gets_an_err_line() {
    hostile::text_garbage_gets_an_err_line(&ServerProcess::gearmand(&[]));
}

#[test]
fn hostile_unknown_packet_type_closes() {
    hostile::unknown_packet_type_closes(&ServerProcess::gearmand(&[]));
}

#[test]
fn hostile_four_gib_length_header_blocks_nobody() {
    hostile::four_gib_length_header_blocks_nobody(&ServerProcess::gearmand(&[]));
}

#[test]
fn hostile_half_sent_packet_then_silence_blocks_nobody() {
    hostile::half_sent_packet_then_silence_blocks_nobody(&ServerProcess::gearmand(&[]));
}

#[test]
fn hostile_work_complete_for_unknown_handle_gets_an_error() {
    hostile::work_complete_for_unknown_handle_gets_an_error(&ServerProcess::gearmand(&[]));
}

#[test]
fn option_worker_wakeup_one() {
    options::worker_wakeup_one(&ServerProcess::gearmand(&["-w", "1"]));
}

#[test]
fn option_job_handle_prefix() {
    options::job_handle_prefix(&ServerProcess::gearmand(&[
        "--job-handle-prefix",
        "TESTPFX",
    ]));
}

#[test]
fn option_exceptions_by_default() {
    options::exceptions_by_default(&ServerProcess::gearmand(&["--exceptions"]));
}
