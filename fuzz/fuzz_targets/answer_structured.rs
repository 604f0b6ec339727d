//! Structure-aware: an `Arbitrary` description of a query (name, type,
//! class, flags, EDNS version/payload/DO/flags, ECS, cookie, NSID and other
//! options, extra records, TSIG, then a few byte mutations) serialized to
//! wire and answered; the answer is checked against `check::check`, and
//! unmutated queries against what docs/reference.md §3 says of them.
#![no_main]

use keiko_dns_fuzz::check::{self, read, rcode};
use keiko_dns_fuzz::{Extra, Owner, StructuredQuery, answer_and_check, worker};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|q: StructuredQuery| {
    thread_local! {
        static STATE: std::cell::RefCell<(keiko_dns::dataplane::Worker, Vec<u8>)> =
            std::cell::RefCell::new((worker(), Vec::with_capacity(65535)));
    }
    let packet = q.wire();
    STATE.with_borrow_mut(|(w, out)| {
        answer_and_check(w, out, &packet, q.client(), q.transport());
        // Semantic expectations for queries that were not mutated.
        let clean = q.mutations.is_empty()
            && !q.qr
            && !q.no_question
            && !matches!(q.owner, Owner::Raw(_))
            && q.extra.iter().all(|e| matches!(e, Extra::Answer | Extra::Authority))
            && q.edns.as_ref().is_none_or(|e| !e.non_root_owner);
        if !clean {
            return;
        }
        let r = read(out).expect("answer to a clean query");
        let q_wire = read(&packet).unwrap();
        let Some(qopt) = &q_wire.opt else { return };
        if !qopt.options_ok {
            return;
        }
        let code = rcode(&r);
        if code == 1 {
            return; // FORMERR for an invalid option, checked elsewhere
        }
        if qopt.version > 0 {
            assert_eq!(code, 16, "EDNS version {} must be BADVERS: {packet:02x?}", qopt.version);
            assert!(r.counts[1] == 0, "BADVERS with an answer");
        }
        let _ = check::EDNS_PAYLOAD;
    });
});
