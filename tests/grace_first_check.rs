//! The grace period of an account ninsho has never seen: the first contact
//! check starts it and stores the start, so the deadline is fixed from then
//! on — checking again every day can't push it forward.

mod support;

use std::sync::Arc;

use ninsho::gateway::RecordingGateway;
use ninsho::grace::GraceDecision;
use ninsho::model::AccountId;
use ninsho::store::MemoryStore;
use ninsho::{Clock, ManualClock};
use support::{T0, two_factor};
use time::Duration;

#[tokio::test]
async fn the_first_check_fixes_the_deadline() {
    let gateway = RecordingGateway::new();
    let clock = ManualClock::at_unix(T0).unwrap();
    let service = two_factor("Example", Arc::new(MemoryStore::new()), &gateway, &clock, 1)
        .build()
        .unwrap();
    let newcomer = AccountId::new("never-seen");
    let day0 = clock.now();

    let first = service.contact_check(&newcomer).await.unwrap();
    match first.decision {
        GraceDecision::Remind { deadline, .. } => {
            assert_eq!(deadline, day0 + Duration::days(7));
        }
        other => panic!("day 0: a reminder with the deadline, got {other:?}"),
    }
    // Checked again every day: the deadline stays where the first check put it.
    for day in 1..7 {
        clock.advance(Duration::days(1));
        match service.contact_check(&newcomer).await.unwrap().decision {
            GraceDecision::Remind { deadline, .. } => {
                assert_eq!(deadline, day0 + Duration::days(7), "day {day}");
            }
            other => panic!("day {day}: a reminder, got {other:?}"),
        }
    }
    clock.set(day0 + Duration::days(30));
    assert!(
        service
            .contact_check(&newcomer)
            .await
            .unwrap()
            .decision
            .is_blocked(),
        "day 30: blocked until a contact is verified"
    );
}

#[tokio::test]
async fn a_first_check_long_after_day_0_still_blocks_at_day_30() {
    // Only the first check and the one at day 30: nothing in between.
    let gateway = RecordingGateway::new();
    let clock = ManualClock::at_unix(T0).unwrap();
    let service = two_factor("Example", Arc::new(MemoryStore::new()), &gateway, &clock, 1)
        .build()
        .unwrap();
    let newcomer = AccountId::new("never-seen");
    let day0 = clock.now();
    assert!(
        !service
            .contact_check(&newcomer)
            .await
            .unwrap()
            .decision
            .is_blocked()
    );
    clock.set(day0 + Duration::days(30));
    assert!(
        service
            .contact_check(&newcomer)
            .await
            .unwrap()
            .decision
            .is_blocked()
    );
}
