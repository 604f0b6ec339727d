use super::*;

#[test]
fn a_takeover_hands_every_socket_over_and_waits_for_ready() {
    let dir = tempfile::tempdir().unwrap();
    let path = socket_path(dir.path());
    let listener = bind(&path).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let (udp_addr, tcp_addr) = (udp.local_addr().unwrap(), tcp.local_addr().unwrap());
    let offer = vec![
        (Kind::Udp, OwnedFd::from(udp)),
        (Kind::Tcp, OwnedFd::from(tcp)),
    ];
    let handoff = Arc::new(Handoff::default());
    let thread = spawn_server(listener, offer, handoff.clone()).unwrap();

    assert!(matches!(probe(&path), Probe::Live(Some(p)) if p == std::process::id()));
    let mut handover = take_over(&path).unwrap();
    assert_eq!(handover.len(), 3);
    assert_eq!(handover.take_udp(udp_addr).len(), 1);
    assert!(handover.take_listener(Kind::Admin, tcp_addr).is_none());
    assert!(handover.take_listener(Kind::Tcp, tcp_addr).is_some());
    assert!(handover.take_control().is_some());
    assert_eq!(handoff.grace(), None, "not before ready");
    handover.finish(Duration::from_millis(1234));
    thread.join().unwrap();
    assert_eq!(handoff.grace(), Some(Duration::from_millis(1234)));
    assert!(!handoff.close(), "handed over: the socket file stays");
}

#[test]
fn nobody_listening_is_told_apart_from_a_failed_takeover() {
    let dir = tempfile::tempdir().unwrap();
    let path = socket_path(dir.path());
    assert!(matches!(probe(&path), Probe::Absent));
    let e = take_over(&path).err().unwrap();
    assert!(matches!(e, TakeoverError::NotRunning { .. }));
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    // A stale file (its process died) is no server either, and a new
    // bind replaces it.
    drop(bind(&path).unwrap());
    assert!(path.exists());
    assert!(matches!(probe(&path), Probe::Absent));
    let _again = bind(&path).unwrap();
}

#[test]
fn a_takeover_abandoned_before_ready_leaves_the_server_serving() {
    let dir = tempfile::tempdir().unwrap();
    let path = socket_path(dir.path());
    let handoff = Arc::new(Handoff::default());
    let _thread = spawn_server(bind(&path).unwrap(), Vec::new(), handoff.clone()).unwrap();
    let handover = take_over(&path).unwrap();
    drop(handover); // dies without `ready`
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(handoff.grace(), None);
    assert!(matches!(probe(&path), Probe::Live(Some(_))));
    assert!(handoff.close(), "a signal stop may remove the socket");
    assert!(take_over(&path).is_err(), "closing: no takeover");
}
