//! Dead letters: a failing event is dead-lettered without holding up the events after it,
//! and the admin API lists and replays it; only admin sessions may.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Recorder, caught_up, created_event, eventually, spawn};
use crate::helpers::assert_problem;

const LIST: &str = "/api/v1/admin/dead-letters";

#[tokio::test]
async fn a_failing_event_is_dead_lettered_later_events_flow_and_a_replay_handles_it() {
    let recorder = Arc::new(Recorder::new("test-dlq"));
    let app = spawn(vec![recorder.clone()], None).await;
    let staff = app.staff().await;
    let admin = app.admin().await;
    let poison = app.create_product(&staff, "POISON-1", 100, 5).await;
    let flaky = app.create_product(&staff, "FLAKY-1", 100, 5).await;
    let fine = app.create_product(&staff, "FINE-1", 100, 5).await;
    let poison_event = created_event(&app, poison["id"].as_str().unwrap()).await;
    let flaky_event = created_event(&app, flaky["id"].as_str().unwrap()).await;
    let fine_event = created_event(&app, fine["id"].as_str().unwrap()).await;

    eventually("the event after the poison to be handled", || async { recorder.handled_count(fine_event) == 1 }).await;
    caught_up(&app, "test-dlq").await;
    assert_eq!(recorder.calls_for(poison_event), 1, "a permanent failure is not retried");
    assert_eq!(recorder.calls_for(flaky_event), 3, "a retryable failure gets events.consumer_max_attempts attempts");

    let (status, page) = app.get(&format!("{LIST}?consumer=test-dlq"), Some(&admin)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{page}");
    let letter = |event: uuid::Uuid| -> Value {
        items.iter().find(|d| d["event_id"] == event.to_string()).cloned().unwrap_or_else(|| panic!("{page}"))
    };
    let p = letter(poison_event);
    assert_eq!(p["event_type"], "product.created");
    assert_eq!(p["attempts"], 1);
    assert_eq!(p["error"], "cannot handle POISON-1");
    assert_eq!(p["envelope"]["id"], poison_event.to_string());
    assert_eq!(p["envelope"]["data"]["sku"], "POISON-1");
    assert!(p["replayed_at"].is_null());
    assert_eq!(letter(flaky_event)["attempts"], 3);

    // Still failing: the replay reports it and counts the attempt.
    let replay = format!("{LIST}/{}/replay", p["id"].as_str().unwrap());
    let (status, body) = app.post(&replay, Some(&admin), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["outcome"], "failed");
    assert_eq!(body["dead_letter"]["attempts"], 2);
    assert!(body["dead_letter"]["replayed_at"].is_null());
    assert_eq!(recorder.handled_count(poison_event), 0);

    // Fixed: the replay runs the handler again and closes the dead letter.
    recorder.cured.store(true, Ordering::SeqCst);
    let (status, body) = app.post(&replay, Some(&admin), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["outcome"], "handled");
    assert!(body["dead_letter"]["replayed_at"].is_string(), "{body}");
    assert_eq!(recorder.handled_count(poison_event), 1);

    let (status, body) = app.post(&replay, Some(&admin), &json!({})).await;
    assert_problem(status, &body, StatusCode::CONFLICT, "dead-letter-replayed");
    assert_eq!(recorder.handled_count(poison_event), 1, "a replayed dead letter is not replayed again");

    let (_, open) = app.get(&format!("{LIST}?consumer=test-dlq&status=open"), Some(&admin)).await;
    let open: Vec<_> = open["items"].as_array().unwrap().iter().map(|d| d["event_id"].clone()).collect();
    assert_eq!(open, vec![json!(flaky_event.to_string())]);
    let (_, replayed) = app.get(&format!("{LIST}?status=replayed"), Some(&admin)).await;
    assert_eq!(replayed["items"].as_array().unwrap().len(), 1, "{replayed}");
    app.stop().await;
}

#[tokio::test]
async fn the_dead_letter_list_pages_with_a_cursor_and_rejects_bad_input() {
    let recorder = Arc::new(Recorder::new("test-dlq-pages"));
    let app = spawn(vec![recorder.clone()], None).await;
    let staff = app.staff().await;
    let admin = app.admin().await;
    for i in 0..3 {
        app.create_product(&staff, &format!("POISON-P{i}"), 100, 5).await;
    }
    caught_up(&app, "test-dlq-pages").await;
    let (status, first) = app.get(&format!("{LIST}?consumer=test-dlq-pages&limit=2"), Some(&admin)).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = app.get(&format!("{LIST}?consumer=test-dlq-pages&limit=2&cursor={cursor}"), Some(&admin)).await;
    assert_eq!(second["items"].as_array().unwrap().len(), 1, "{second}");
    assert!(second["next_cursor"].is_null());
    let mut ids: Vec<Value> =
        [&first, &second].iter().flat_map(|p| p["items"].as_array().unwrap().iter().map(|d| d["id"].clone())).collect();
    ids.dedup();
    assert_eq!(ids.len(), 3);

    let (status, body) = app.get(&format!("{LIST}?limit=0"), Some(&admin)).await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation-error");
    let unknown = format!("{LIST}/{}/replay", uuid::Uuid::new_v4());
    let (status, body) = app.post(&unknown, Some(&admin), &json!({})).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
    app.stop().await;
}

#[tokio::test]
async fn customers_staff_and_anonymous_callers_are_refused_the_dead_letter_api() {
    let app = spawn(Vec::new(), None).await;
    let (customer, _, _) = app.register_customer("dlq-customer@example.com").await;
    let staff = app.staff().await;
    let admin = app.admin().await;
    let replay = format!("{LIST}/{}/replay", uuid::Uuid::new_v4());

    let (status, body) = app.get(LIST, None).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "unauthenticated");
    let (status, body) = app.post(&replay, None, &json!({})).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "unauthenticated");
    for token in [&customer, &staff] {
        let (status, body) = app.get(LIST, Some(token)).await;
        assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
        let (status, body) = app.post(&replay, Some(token), &json!({})).await;
        assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
    }
    let (status, body) = app.get(LIST, Some(&admin)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.stop().await;
}
