//! Event retention: events older than `[events] retention_days` are deleted when the server
//! starts (and hourly after), and the deletion is itself logged; 0 keeps everything.

mod common;

use common::Server;

fn age_events(state: &std::path::Path, ts: &str) -> usize {
    let c = rusqlite::Connection::open(state.join("state.db")).unwrap();
    c.execute("UPDATE events SET ts = ?1", [ts]).unwrap()
}

#[test]
fn old_events_are_pruned_at_start() {
    let s = Server::start();
    let mut anon = s.client();
    for i in 0..3 {
        assert_eq!(
            anon.get(&format!("/pxe/52:54:00:00:02:{i:02x}")).status,
            200
        );
    }
    let state = s.state_dir();
    let s = s.restart(&[("BTY_EVENTS_RETENTION_DAYS", "0")]);
    assert_eq!(age_events(&state, "2020-01-01T00:00:00.000000+00:00"), 6);
    // Retention 0: kept across a restart.
    let s = s.restart(&[("BTY_EVENTS_RETENTION_DAYS", "0")]);
    let mut c = s.signed_in("bty-lab");
    assert_eq!(
        c.event_kinds("limit=100").len(),
        7,
        "6 old ones and the sign-in"
    );
    // The default (365 days): the six from 2020 go, the sign-in stays, the prune is logged.
    age_events(&state, "2020-01-01T00:00:00.000000+00:00");
    let s = s.restart(&[]);
    let mut c = s.signed_in("bty-lab");
    let left = c.event_kinds("limit=100");
    assert_eq!(
        left,
        vec!["auth.login.succeeded", "events.pruned"],
        "{left:?}"
    );
    let pruned = &c.get("/events?kind=events.pruned").json()["events"][0];
    assert_eq!(pruned["details"]["deleted"], 7);
    assert_eq!(pruned["details"]["retention_days"], 365);
}
