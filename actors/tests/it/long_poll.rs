//! Actor tests of `paas_long_polling` (`RunnerSettings::long_polling`) on
//! paused time: a job arriving during a hold is acquired at once, a long
//! poll is never sent while it could keep another runner waiting, and a
//! drain waits for a held poll until its window ends.

use crate::common::*;
use paas_actors::testing::{job, MemoryStore, World};
use std::time::Duration;

const MS100: Duration = Duration::from_millis(100);

fn long_requests(r: &Runner) -> u64 {
    r.coord.script.borrow().long_requests
}

fn holding(r: &Runner) -> usize {
    r.coord.script.borrow().holding.0
}

fn long_polling(world: &std::rc::Rc<World>, name: &str, window: Duration) -> Runner {
    let mut r = runner(world, name, 1.0);
    r.settings.long_polling = true;
    r.coord.script.borrow_mut().long_poll_window = Some(window);
    r
}

#[actix_rt::test]
async fn a_job_arriving_during_a_hold_is_acquired_at_once() {
    tokio::time::pause();
    let world = World::new();
    let r = long_polling(&world, "ra", Duration::from_secs(60));
    let store = MemoryStore::new();
    let mut s = settings(4.0);
    s.check_interval = Duration::from_secs(30);
    let mut svc = start(s, &[&r], &store).await;
    assert!(until(MS100, 100, || holding(&r) == 1).await, "no hold");
    tokio::time::sleep(Duration::from_secs(5)).await;
    r.coord.push_jobs([job(1, &[])]);
    let t0 = tokio::time::Instant::now();
    assert!(svc.until(MS100, 50, |s| s.acquired == 1).await);
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "acquired {:?} after the job arrived (check_interval is 30 s)",
        t0.elapsed()
    );
    // a hold that ends with its window (60 s, longer than check_interval)
    // is followed by the next long poll at once
    assert!(until(MS100, 10, || holding(&r) == 1).await, "held again");
    let before = long_requests(&r);
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert_eq!(long_requests(&r), before + 1);
    assert_eq!(holding(&r), 1);
    svc.stop().await;
}

#[actix_rt::test]
async fn a_poll_is_short_while_a_hold_could_keep_another_runner_waiting() {
    tokio::time::pause();
    let world = World::new();
    // quota: two jobs of weight 1; each runner's largest job weighs 1
    let a = long_polling(&world, "ra", Duration::from_secs(600));
    let b = runner(&world, "rb", 1.0);
    let store = MemoryStore::new();
    let mut svc = start(settings(2.0), &[&a, &b], &store).await;
    assert!(until(MS100, 100, || holding(&a) == 1).await, "a holds");
    assert_eq!(long_requests(&b), 0, "b polls short");
    // b acquires its job while a holds: the hold left room for it
    b.coord.push_jobs([job(21, &[])]);
    assert!(svc.until(MS100, 100, |s| s.acquired == 1).await);
    assert_eq!(holding(&a), 1, "a still holds");
    // a's hold ends; while b's job holds half the quota, a's reservation
    // would leave b no room: a's polls are short
    tokio::time::sleep(Duration::from_secs(601)).await;
    let (long_before, polls_before) = (long_requests(&a), a.coord.script.borrow().requests);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        long_requests(&a),
        long_before,
        "no long poll while b's job runs"
    );
    assert!(
        a.coord.script.borrow().requests > polls_before + 5,
        "a still polls, short"
    );
    // b still gets its second job (a short poll holds nothing for long)
    b.coord.push_jobs([job(22, &[])]);
    world.finish_job(21);
    assert!(svc.until(SEC, 120, |s| s.acquired == 2).await);
    world.finish_job(22);
    assert!(svc.until(SEC, 120, |s| s.completed == 2).await);
    // room is back: a long-polls again
    assert!(until(MS100, 100, || holding(&a) == 1).await);
    assert!(long_requests(&a) > long_before);
    svc.stop().await;
}

#[actix_rt::test]
async fn a_drain_waits_for_a_held_poll_until_its_window_ends() {
    tokio::time::pause();
    let world = World::new();
    let r = long_polling(&world, "ra", Duration::from_secs(40));
    let store = MemoryStore::new();
    let mut svc = start(settings(4.0), &[&r], &store).await;
    assert!(until(MS100, 100, || holding(&r) == 1).await, "no hold");
    let t0 = tokio::time::Instant::now();
    let report = svc.stop().await;
    assert!(!report.forced, "{report:?}");
    let took = t0.elapsed();
    assert!(took <= Duration::from_secs(41), "{took:?}");
    assert_eq!(holding(&r), 0);
}

#[actix_rt::test]
async fn with_the_key_off_every_poll_is_short() {
    tokio::time::pause();
    let world = World::new();
    let r = runner(&world, "ra", 1.0);
    r.coord.script.borrow_mut().long_poll_window = Some(Duration::from_secs(60));
    let store = MemoryStore::new();
    let mut svc = start(settings(4.0), &[&r], &store).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let (requests, long) = {
        let s = r.coord.script.borrow();
        (s.requests, s.long_requests)
    };
    assert!(requests >= 9, "polled every check_interval: {requests}");
    assert_eq!(long, 0);
    svc.stop().await;
}
