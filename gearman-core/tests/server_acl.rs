//! ACL changes on a running server (SIGHUP reload): what an open connection was granted
//! before and is no longer.

mod support;

use gearman_core::acl::Acl;
use gearman_core::proto::WorkPayload;
use gearman_core::proto::{GrabMode, Priority, Request, Response, SubmitJob, SubmitMode};
use support::{b, Net};

fn bg(f: &str, unique: &str) -> Request {
    Request::Submit(SubmitJob {
        function: b(f),
        unique: b(unique),
        mode: SubmitMode::Background(Priority::Normal),
        data: b("x"),
    })
}

fn fg(f: &str) -> Request {
    Request::Submit(SubmitJob {
        function: b(f),
        unique: b(""),
        mode: SubmitMode::Foreground(Priority::Normal),
        data: b("x"),
    })
}

/// A reload that takes `register` away ends the worker's registration: it gets no new job
/// of that function and `status` no longer counts it; a job it already runs still reports.
#[test]
fn a_reloaded_acl_revokes_registrations_it_no_longer_grants() {
    let mut net = Net::new(7);
    let acl = |text: &str| Some(Acl::parse(text).unwrap());
    net.server
        .set_acl(acl("* submit *\n* admin-read\n* register secret kept\n"));
    let (worker, client, admin) = (net.connect(), net.connect(), net.connect());
    net.send(
        worker,
        Request::CanDo {
            function: b("secret"),
        },
    );
    net.send(
        worker,
        Request::CanDo {
            function: b("kept"),
        },
    );
    net.send(client, fg("secret"));
    net.send(worker, Request::GrabJob(GrabMode::Plain));
    let handle = match net.recv(worker).pop() {
        Some(Response::JobAssign(a)) => a.handle,
        other => panic!("{other:?}"),
    };
    net.recv(client);

    net.server
        .set_acl(acl("* submit *\n* admin-read\n* register kept\n"));
    net.check();
    let status = net.admin(admin, "status\n");
    assert!(status.contains("secret\t1\t1\t0\n"), "{status}");
    assert!(status.contains("kept\t0\t0\t1\n"), "{status}");
    // A new job of the revoked function is not handed to the worker.
    net.send(client, bg("secret", "later"));
    net.recv(client);
    net.send(worker, Request::GrabJob(GrabMode::Plain));
    assert_eq!(net.recv(worker), vec![Response::NoJob]);
    // The job it was already running completes as usual.
    net.send(
        worker,
        Request::WorkComplete(WorkPayload {
            handle: handle.clone(),
            data: b("done"),
        }),
    );
    assert_eq!(
        net.recv(client),
        vec![Response::WorkComplete(WorkPayload {
            handle,
            data: b("done")
        })]
    );
    // Registering again is refused under the new rules.
    net.send(
        worker,
        Request::CanDo {
            function: b("secret"),
        },
    );
    assert!(matches!(
        net.recv(worker).as_slice(),
        [Response::Error { code, .. }] if code == "PERMISSION_DENIED"
    ));
}
