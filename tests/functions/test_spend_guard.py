"""The spend guard: no interleaving of submissions pays past the budget, and nothing parked is lost.

Real threads against the moto server (whose writes are atomic, as DynamoDB's are) and a clock
the tests pass in: ``now`` is any instant, so a day or a month rolls over by adding seconds.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import pytest
from functions_kit import Reply, unique_image

from cutouts.gateway import GatewayInDoubt

PRICE = 18_000  # micro-dollars: the default 0.018 USD
DAY = 86_400
NOW = datetime(2026, 11, 30, 15, 0, tzinfo=UTC).timestamp()  # mid-afternoon UTC, mid-month


def budget(cutouts, monkeypatch, *, daily_images: float | None = None, monthly_images: float | None = None):
    """Services whose day (and month) budget is this many images at the default price."""
    from cutouts import runtime

    if daily_images is not None:
        monkeypatch.setenv("CUTOUTS_DAILY_BUDGET_USD", repr(daily_images * 0.018))
    if monthly_images is not None:
        monkeypatch.setenv("CUTOUTS_MONTHLY_BUDGET_USD", repr(monthly_images * 0.018))
    runtime.settings.cache_clear()
    return cutouts.services()


def source_for(cutouts, key: str, sequencer: str = "0055AED6DCD90281E5", body: bytes | None = None):
    from cutouts.notifications import source_from_s3_record

    doc = json.loads(cutouts.notification(key, body or unique_image(key + sequencer), sequencer=sequencer))
    return source_from_s3_record(doc["Records"][0])


def submit_all_at_once(services, sources, now: float) -> list:
    """Submit every source from its own thread, released together."""
    from cutouts.submission import submit_source

    start, results = threading.Barrier(len(sources)), [None] * len(sources)

    def one(i: int) -> None:
        start.wait()
        results[i] = submit_source(sources[i], services, now)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(sources))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def spent(services, now: float) -> tuple[int, int]:
    from cutouts.spend_guard import spend_now

    day, month = spend_now(services, now)
    return day.spent, month.spent


def jobs_in(services, status: str) -> list:
    return list(services.store.list_by_status(status, NOW + 400 * DAY, 1000))


# --- the budget is never passed -------------------------------------------------------------------


def test_a_budget_of_five_images_and_twenty_uploads_at_once_pays_five_and_parks_fifteen(cutouts, monkeypatch):
    # Given a day's budget of five images and twenty uploads
    services = budget(cutouts, monkeypatch, daily_images=5)
    sources = [source_for(cutouts, f"uploads/batch/{i:02}.jpg") for i in range(20)]
    # When all twenty are submitted at once
    results = submit_all_at_once(services, sources, NOW)
    # Then exactly five reached the gateway and were paid for, and fifteen wait, unpaid, saying why
    assert sorted(r.result for r in results).count("submitted") == 5
    assert len(cutouts.gateway.posts()) == 5
    parked = jobs_in(services, "PARKED")
    assert len(parked) == 15
    assert {j.parked_reason for j in parked} == {"daily-budget"}
    assert all("dailyBudgetUsd" in (j.error or "") for j in parked)
    assert spent(services, NOW)[0] == 5 * PRICE
    # And nothing failed: no report was written
    assert cutouts.keys("failed/") == []


def test_twenty_concurrent_reservations_never_overshoot(cutouts):
    # Given a day with room for seven images and twenty reservations racing for it
    from cutouts.spend_records import Limits, Reserved

    store = cutouts.services().store
    limits = Limits(price=PRICE, daily=7 * PRICE + PRICE - 1, monthly=None)  # not quite room for an eighth
    start, answers = threading.Barrier(20), []

    def reserve(i: int) -> None:
        start.wait()
        answers.append(store.reserve_spend(f"job{i:02}", 1, "2026-11-30", "2026-11", limits, NOW))

    threads = [threading.Thread(target=reserve, args=(i,)) for i in range(20)]
    # When they all run at once
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then exactly seven were reserved, and the day holds exactly their price
    assert answers.count(Reserved.RESERVED) == 7
    assert answers.count(Reserved.DAILY_BUDGET) == 13
    assert store.spend_of("2026-11-30", "2026-11")[0].spent == 7 * PRICE


def test_the_same_attempt_reserves_once_whoever_asks_again(cutouts):
    # Given a reservation for attempt 1 of a job
    from cutouts.spend_records import Limits, Reserved

    store = cutouts.services().store
    limits = Limits(price=PRICE, daily=10 * PRICE, monthly=None)
    assert store.reserve_spend("job", 1, "2026-11-30", "2026-11", limits, NOW) is Reserved.RESERVED
    # When the same attempt reserves again (a repeated call)
    again = store.reserve_spend("job", 1, "2026-11-30", "2026-11", limits, NOW)
    # Then it is not charged twice
    assert again is Reserved.ALREADY
    assert store.spend_of("2026-11-30", "2026-11")[0].spent == PRICE


def test_the_month_budget_parks_too_and_only_the_next_month_releases_it(cutouts, monkeypatch):
    # Given a month with room for two images (the day has plenty)
    from cutouts.reconciliation import resume_parked

    services = budget(cutouts, monkeypatch, monthly_images=2)
    mid_month = datetime(2026, 11, 10, 12, 0, tzinfo=UTC).timestamp()
    sources = [source_for(cutouts, f"uploads/m/{i}.jpg") for i in range(3)]
    # When three are submitted one after the other
    from cutouts.submission import submit_source

    results = [submit_source(s, services, mid_month + i) for i, s in enumerate(sources)]
    # Then the third is parked for the month
    assert [r.result for r in results] == ["submitted", "submitted", "parked"]
    assert services.store.get(results[2].job_id).parked_reason == "monthly-budget"
    # And the next day does not release it, the first day of the next month does
    resume_parked(services, mid_month + DAY)
    assert services.store.get(results[2].job_id).status == "PARKED"
    next_month = datetime(2026, 12, 1, 0, 0, 30, tzinfo=UTC).timestamp()
    counts = resume_parked(services, next_month)
    assert counts["resumed"] == 1
    assert services.store.get(results[2].job_id).status == "SUBMITTED"
    assert spent(services, next_month)[1] == PRICE


# --- parked jobs resume on their own, oldest first -----------------------------------------------


def test_the_next_utc_day_releases_parked_jobs_oldest_first_within_its_budget(cutouts, monkeypatch):
    # Given five paid and fifteen parked today
    from cutouts.reconciliation import resume_parked

    services = budget(cutouts, monkeypatch, daily_images=5)
    submit_all_at_once(services, [source_for(cutouts, f"uploads/batch/{i:02}.jpg") for i in range(20)], NOW)
    parked = jobs_in(services, "PARKED")  # the status index: oldest parked first
    # When the reconciler runs later today, nothing moves
    assert resume_parked(services, NOW + 3600)["resumed"] == 0
    # When it runs just after midnight UTC
    tomorrow = datetime(2026, 12, 1, 0, 1, tzinfo=UTC).timestamp()
    counts = resume_parked(services, tomorrow)
    # Then the five oldest parked jobs are sent, within the new day's budget, and ten still wait
    assert counts["resumed"] == 5
    assert {j.job_id for j in jobs_in(services, "SUBMITTED") if j.resumed_at} == {j.job_id for j in parked[:5]}
    assert len(jobs_in(services, "PARKED")) == 10
    assert len(cutouts.gateway.posts()) == 10
    assert spent(services, tomorrow)[0] == 5 * PRICE
    # And the day after sends the next five
    assert resume_parked(services, tomorrow + DAY)["resumed"] == 5


def test_a_parked_job_never_reaches_its_maximum_age_while_parked(cutouts, monkeypatch):
    # Given a job parked because the day's budget is zero
    from cutouts.reconciliation import reconcile
    from cutouts.submission import submit_source

    services = budget(cutouts, monkeypatch, daily_images=0)
    outcome = submit_source(source_for(cutouts, "uploads/slow.jpg"), services, NOW)
    assert outcome.result == "parked"
    # When the reconciler runs long past the maximum job age, with still no budget
    later = NOW + 20 * services.settings.max_age_seconds
    reconcile(services, later)
    # Then the job is still parked, not timed out, and has no report
    assert services.store.get(outcome.job_id).status == "PARKED"
    assert cutouts.keys("failed/") == []
    # And once budget opens it is sent, and its age counts from then
    services = budget(cutouts, monkeypatch, daily_images=3)
    reconcile(services, later + 1)
    resumed = services.store.get(outcome.job_id)
    assert resumed.status == "SUBMITTED"
    assert resumed.resumed_at == later + 1
    from cutouts.reconciliation import _too_old

    assert not _too_old(resumed, services, later + 10)


def test_a_parked_job_whose_key_was_uploaded_again_is_superseded_not_sent(cutouts, monkeypatch):
    # Given v1 of a key parked, then v2 uploaded
    from cutouts.reconciliation import resume_parked
    from cutouts.submission import submit_source

    services = budget(cutouts, monkeypatch, daily_images=0)
    v1 = submit_source(source_for(cutouts, "uploads/k.jpg", "0055AED6DCD90281E5"), services, NOW)
    v2 = submit_source(source_for(cutouts, "uploads/k.jpg", "0055AED6DCD90281E6"), services, NOW + 1)
    assert (v1.result, v2.result) == ("parked", "parked")
    # When the next day opens with room for both
    services = budget(cutouts, monkeypatch, daily_images=5)
    resume_parked(services, NOW + DAY)
    # Then only the newest version is paid for
    assert services.store.get(v1.job_id).status == "SUPERSEDED"
    assert services.store.get(v2.job_id).status == "SUBMITTED"
    assert len(cutouts.gateway.posts()) == 1


# --- what was not charged is given back, exactly once --------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
def test_a_refused_post_gives_its_reservation_back_exactly_once(cutouts, monkeypatch, status):
    # Given the gateway refuses the POST
    from cutouts.spend_guard import give_back
    from cutouts.submission import RetryLater, submit_source

    services = budget(cutouts, monkeypatch, daily_images=5)
    cutouts.gateway.submit_replies.append(Reply(status, {"error": "busy"}))
    # When a job is submitted
    with pytest.raises(RetryLater):
        submit_source(source_for(cutouts, "uploads/a.jpg"), services, NOW)
    # Then its reservation is back in the budget, and asking again gives nothing more back
    job = jobs_in(services, "RETRY")[0]
    assert spent(services, NOW)[0] == 0
    assert give_back(job.job_id, job.attempt, services, NOW) is False
    assert spent(services, NOW)[0] == 0


def test_a_post_refused_for_good_gives_its_reservation_back(cutouts, monkeypatch):
    # Given the gateway answers 402 (no balance): not charged
    from cutouts.submission import submit_source

    services = budget(cutouts, monkeypatch, daily_images=5)
    cutouts.gateway.submit_replies.append(Reply(402, {"error": "Insufficient balance"}))
    # When a job is submitted
    outcome = submit_source(source_for(cutouts, "uploads/b.jpg"), services, NOW)
    # Then it fails with its report, and nothing stays reserved
    assert outcome.result == "failed"
    assert spent(services, NOW)[0] == 0


def test_an_error_the_gateway_reports_gives_back_once_even_when_its_callback_repeats(cutouts, monkeypatch):
    # Given an accepted job the gateway then reports as ERROR (not charged)
    from cutouts.completion import settle_job
    from cutouts.submission import submit_source

    services = budget(cutouts, monkeypatch, daily_images=5)
    outcome = submit_source(source_for(cutouts, "uploads/c.jpg"), services, NOW)
    assert spent(services, NOW)[0] == PRICE
    cutouts.gateway.set_status(outcome.detail, "ERROR", error="worker crashed")
    job = services.store.get(outcome.job_id)
    # When the ERROR is settled twice (a redelivered callback, or the reconciler as well)
    first = settle_job(job, services.gateway.status(job.request_id), services, NOW + 5)
    settle_job(job, services.gateway.status(job.request_id), services, NOW + 6)
    # Then the reservation came back once: the day is at zero, not below it
    assert first == "resubmit"
    assert spent(services, NOW)[0] == 0


def test_an_in_doubt_post_keeps_its_reservation(cutouts, monkeypatch):
    # Given a POST whose answer never comes back
    from cutouts.submission import submit_source

    services = budget(cutouts, monkeypatch, daily_images=5)

    def no_answer(image_url: str, webhook_url: str):
        raise GatewayInDoubt("read timed out")

    monkeypatch.setattr(services.gateway, "submit", no_answer)
    # When a job is submitted
    outcome = submit_source(source_for(cutouts, "uploads/d.jpg"), services, NOW)
    # Then the job is in doubt and its price stays reserved: the gateway may have billed it
    assert outcome.result == "in-doubt"
    assert spent(services, NOW)[0] == PRICE


# --- the loop guard --------------------------------------------------------------------------------


def test_the_loop_guard_trips_on_the_twenty_first_version_of_one_key(cutouts, monkeypatch):
    # Given one key uploaded twenty times today, each version submitted
    from cutouts.submission import submit_source

    services = budget(cutouts, monkeypatch, daily_images=100)
    key = "uploads/loop/same.jpg"
    results = []
    for i in range(21):
        source = source_for(cutouts, key, f"0055AED6DCD9028{i:03X}", body=unique_image(f"v{i}"))
        results.append(submit_source(source, services, NOW + i))
    # Then the first twenty were submitted, and the twenty-first was not: it failed as a loop
    assert [r.result for r in results[:20]] == ["submitted"] * 20
    assert results[20].result == "failed"
    assert results[20].detail == "upload-loop"
    report = cutouts.report("failed/loop/same.jpg.json")
    assert report["reason"] == "upload-loop"
    assert "maxVersionsPerKeyPerDay" in report["what_to_do"]
    assert len(cutouts.gateway.posts()) == 20
    # And the next UTC day the key is submitted again
    source = source_for(cutouts, key, "0055AED6DCD90290FF", body=unique_image("tomorrow"))
    assert submit_source(source, services, NOW + DAY).result == "submitted"


def test_a_repeated_event_of_one_version_counts_once_for_the_loop_guard(cutouts, monkeypatch):
    # Given a key whose limit is two versions a day
    from cutouts.spend_guard import upload_loop
    from cutouts.submission import submit_source

    monkeypatch.setenv("CUTOUTS_MAX_VERSIONS_PER_KEY_PER_DAY", "2")
    services = budget(cutouts, monkeypatch)
    source = source_for(cutouts, "uploads/r.jpg")
    submit_source(source, services, NOW)
    # When the same version's event arrives five more times
    for _ in range(5):
        submit_source(source, services, NOW)
    # Then it still counts as one version: a second version is admitted, a third is not
    job = source.new_job()
    job.job_id = "second-version"
    assert upload_loop(job, services, NOW) is None
    job.job_id = "third-version"
    assert upload_loop(job, services, NOW) is not None


# --- resume: the operator releases parked jobs earlier --------------------------------------------


def test_resume_sends_parked_jobs_on_through_the_queue_once_the_budget_has_room(cutouts, monkeypatch):
    # Given three jobs parked at a budget of zero (oldest first)
    from cutouts.notifications import sources_in_notification
    from cutouts.submission import submit_source
    from cutouts_cli.resume import parked_jobs, resume_parked
    from cutouts_cli.target import Clients, Target

    services = budget(cutouts, monkeypatch, daily_images=0)
    for i in range(3):
        assert submit_source(source_for(cutouts, f"uploads/p/{i}.jpg"), services, NOW + i).result == "parked"
    clients = Clients(cutouts.s3, cutouts.sqs, cutouts.ddb, cutouts.table)
    target = Target(cutouts.bucket, cutouts.queue_url, cutouts.dlq_url, cutouts.table)
    # When the operator runs a dry run, then resumes those under p/ after raising the budget to two images
    jobs = parked_jobs(clients, target, NOW + 10, "p/")
    dry = resume_parked(clients, target, jobs, NOW + 10, dry_run=True)
    assert [r.key for r in dry.resumed] == [f"uploads/p/{i}.jpg" for i in range(3)]
    assert len(jobs_in(services, "PARKED")) == 3  # the dry run changed nothing
    result = resume_parked(clients, target, jobs, NOW + 10)
    services = budget(cutouts, monkeypatch, daily_images=2)
    messages = cutouts.sqs.receive_message(QueueUrl=cutouts.queue_url, MaxNumberOfMessages=10)["Messages"]
    outcomes = [
        submit_source(source, services, NOW + 20)
        for message in messages
        for source in sources_in_notification(message["Body"])
    ]
    # Then all three were sent through the queue, two were paid within the budget, and one is parked again
    assert len(result.resumed) == 3 and len(messages) == 3
    assert sorted(o.result for o in outcomes) == ["parked", "submitted", "submitted"]
    assert len(cutouts.gateway.posts()) == 2
    assert spent(services, NOW)[0] == 2 * PRICE
    # And a second resume of the same (stale) list changes nothing
    assert resume_parked(clients, target, jobs, NOW + 30).skipped["no longer parked"] == 3


def test_a_job_waiting_for_identical_bytes_of_a_parked_job_waits_with_it_and_gets_its_cutout(cutouts, monkeypatch):
    # Given a job parked at the budget, and the same bytes uploaded under another name (it waits for the first)
    from functions_kit import cutout_png

    from cutouts.reconciliation import reconcile
    from cutouts.submission import submit_source

    services = budget(cutouts, monkeypatch, daily_images=0)
    same = unique_image("twin")
    owner = submit_source(source_for(cutouts, "uploads/twin/a.jpg", body=same), services, NOW)
    waiter = submit_source(source_for(cutouts, "uploads/twin/b.jpg", body=same), services, NOW + 1)
    assert (owner.result, waiter.result) == ("parked", "waiting")
    # When the reconciler runs long past the maximum age with still no budget
    later = NOW + 20 * services.settings.max_age_seconds
    reconcile(services, later)
    # Then neither timed out
    assert services.store.get(waiter.job_id).status == "WAITING"
    assert cutouts.keys("failed/") == []
    # And once budget opens the owner is paid, and when its cutout lands the waiter gets a copy
    services = budget(cutouts, monkeypatch, daily_images=1)
    reconcile(services, later + 1)
    resumed = services.store.get(owner.job_id)
    assert resumed.status == "SUBMITTED"
    reconcile(services, later + 2)  # the waiter, far older than the maximum age, still waits
    assert services.store.get(waiter.job_id).status == "WAITING"
    cutouts.gateway.complete(resumed.request_id, cutout_png())
    from cutouts.completion import settle_job

    settle_job(resumed, services.gateway.status(resumed.request_id), services, later + 3)
    reconcile(services, later + 4)
    assert services.store.get(waiter.job_id).status == "COMPLETED"
    assert len(cutouts.gateway.posts()) == 1


def test_budgets_are_whole_micro_dollars_and_a_monthly_budget_of_zero_means_none():
    # Given the settings as the functions read them from their environment
    from cutouts.settings import SettingsError, load_settings
    from cutouts.spend_guard import limits_of

    required = {"CUTOUTS_TABLE_NAME": "t", "CUTOUTS_GATEWAY_KEY_SECRET": "k", "CUTOUTS_SIGNING_SECRET": "s"}
    # When the defaults are read, then a budget of zero and a monthly budget
    default = limits_of(load_settings(required))
    zero = limits_of(load_settings(required | {"CUTOUTS_DAILY_BUDGET_USD": "0"}))
    monthly = limits_of(load_settings(required | {"CUTOUTS_MONTHLY_BUDGET_USD": "1000.07"}))
    # Then they are exact integers: $50 a day, 18,000 micro-dollars an image, no monthly budget
    assert default == (18_000, 50_000_000, None)
    assert zero.daily == 0 and monthly.monthly == 1_000_070_000
    # And a negative budget is refused at cold start, naming the variable
    with pytest.raises(SettingsError, match="CUTOUTS_DAILY_BUDGET_USD"):
        load_settings(required | {"CUTOUTS_DAILY_BUDGET_USD": "-1"})


# --- other systems hear of it -------------------------------------------------------------------------


def test_each_parked_job_is_announced_once_and_the_budget_reached_once_a_day(cutouts, monkeypatch, moto_server):
    import boto3

    from cutouts import constants as c

    # Given a rule on the default bus forwarding cutouts events to a queue, and a day's budget of two images
    creds = {"region_name": "us-east-1", "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    events = boto3.client("events", endpoint_url=moto_server, **creds)
    queue_url = cutouts.sqs.create_queue(QueueName="spend-events")["QueueUrl"]
    arn = cutouts.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="spend-events", EventPattern=json.dumps({"source": [c.EVENT_SOURCE]}))
    events.put_targets(Rule="spend-events", Targets=[{"Id": "queue", "Arn": arn}])
    services = budget(cutouts, monkeypatch, daily_images=2)
    sources = [source_for(cutouts, f"uploads/announce/{i}.jpg") for i in range(5)]
    # When five are submitted one after another, and the third one's message is delivered again
    for source in sources:
        submit_source_now(services, source)
    submit_source_now(services, sources[2])
    # Then three Cutout Parked events say why and when they resume, and one Budget Reached names the day
    got = []
    while reply := cutouts.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages"):
        for message in reply:
            got.append(json.loads(message["Body"]))
            cutouts.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    parked = [e for e in got if e["detail-type"] == "Cutout Parked"]
    reached = [e for e in got if e["detail-type"] == "Budget Reached"]
    assert sorted(e["detail"]["source"]["key"] for e in parked) == [s.key for s in sources[2:]]
    assert {e["detail"]["parked"]["period"] for e in parked} == {"day"}
    assert {e["detail"]["parked"]["resumes_at"] for e in parked} == {"2026-12-01T00:00:00.000Z"}
    assert len(reached) == 1 and reached[0]["detail"]["period_start"] == "2026-11-30"
    assert reached[0]["detail"]["spent_usd"] == pytest.approx(0.036)


def submit_source_now(services, source):
    from cutouts.submission import submit_source

    return submit_source(source, services, NOW)
