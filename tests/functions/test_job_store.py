"""The job table's conditional transitions, against moto's DynamoDB (table built from constants)."""

import boto3
import pytest
from botocore.stub import Stubber

from cutouts.job_store import (
    COMPLETED,
    FAILED,
    IN_DOUBT,
    RESUBMIT,
    RETRY,
    SUBMITTED,
    SUBMITTING,
    Job,
    JobStore,
    JobStoreError,
)
from cutouts.keys import padded_sequencer

NOW = 1_750_000_000.0


@pytest.fixture
def store(cutouts):
    return JobStore(cutouts.ddb, cutouts.table)


def new_job(n: int = 1) -> Job:
    return Job(job_id=f"{n:032x}", bucket="b", key=f"uploads/{n}.jpg", version="etag", status="")


def claimed(store: JobStore, n: int = 1, now: float = NOW) -> Job:
    job = new_job(n)
    assert store.claim(job, now, 120)
    return store.get(job.job_id)


def test_claim_succeeds_once_and_a_second_claim_is_refused(store):
    # Given an unseen object version
    job = new_job()
    # When two deliveries claim it
    first, second = store.claim(job, NOW, 120), store.claim(job, NOW + 1, 120)
    # Then only the first wins, and the record is what the first wrote
    assert (first, second) == (True, False)
    stored = store.get(job.job_id)
    assert (stored.status, stored.attempt, stored.created_at, stored.lease_until) == (SUBMITTING, 1, NOW, NOW + 120)


def test_a_job_released_for_retry_can_be_claimed_again(store):
    job = claimed(store)
    assert store.release(job.job_id, 1, NOW + 1, "429")
    assert store.get(job.job_id).status == RETRY
    assert store.claim(new_job(), NOW + 2, 120)
    assert store.get(job.job_id).created_at == NOW  # the first claim's time is kept


def test_mark_submitted_only_from_submitting_with_the_same_attempt(store):
    job = claimed(store)
    assert not store.mark_submitted(job.job_id, 2, "rid-other-attempt", NOW)
    assert store.mark_submitted(job.job_id, 1, "rid-1", NOW)
    assert not store.mark_submitted(job.job_id, 1, "rid-again", NOW)  # no longer SUBMITTING
    stored = store.get(job.job_id)
    assert (stored.status, stored.request_id, stored.lease_until) == (SUBMITTED, "rid-1", None)


def test_mark_submitted_on_an_unknown_job_changes_nothing(store, cutouts):
    assert not store.mark_submitted("f" * 32, 1, "rid", NOW)
    assert cutouts.all_items() == []


def test_adopt_only_when_no_request_id_is_known(store):
    job = claimed(store)
    assert store.mark_in_doubt(job.job_id, 1, NOW, "timeout")
    assert not store.adopt(job.job_id, 2, "rid-1", NOW)  # wrong attempt
    assert store.adopt(job.job_id, 1, "rid-1", NOW)
    assert not store.adopt(job.job_id, 1, "rid-2", NOW)  # already has one
    assert store.get(job.job_id).request_id == "rid-1"


def test_adopt_refused_for_a_submitted_job(store):
    job = claimed(store)
    store.mark_submitted(job.job_id, 1, "rid-1", NOW)
    assert not store.adopt(job.job_id, 1, "rid-evil", NOW)
    assert store.get(job.job_id).request_id == "rid-1"


def test_mark_completed_requires_the_matching_request_id(store):
    job = claimed(store)
    store.mark_submitted(job.job_id, 1, "rid-1", NOW)
    job = store.get(job.job_id)
    impostor = Job(**{**job.__dict__, "request_id": "rid-other"})
    assert not store.mark_completed(impostor, NOW, "cutouts/1.jpg.png")
    assert store.get(job.job_id).status == SUBMITTED
    assert store.mark_completed(job, NOW, "cutouts/1.jpg.png")
    assert not store.mark_completed(job, NOW, "cutouts/1.jpg.png")  # only once
    done = store.get(job.job_id)
    assert (done.status, done.output_key, done.finished_at) == (COMPLETED, "cutouts/1.jpg.png", NOW)


def test_a_completed_job_keeps_no_lease_or_error_from_its_earlier_states(store):
    # Given a job whose POST went unanswered (error and lease recorded) and whose callback adopted it
    job = claimed(store)
    store.mark_in_doubt(job.job_id, 1, NOW, "read timed out")
    store.adopt(job.job_id, 1, "rid-1", NOW + 1)
    # When it completes from what the webhook read
    assert store.mark_completed(store.get(job.job_id), NOW + 2, "cutouts/1.jpg.png")
    # Then the record says only that it completed, not from the cache
    done = store.get(job.job_id)
    assert (done.status, done.error, done.reason, done.lease_until, done.from_cache) == (
        COMPLETED,
        None,
        None,
        None,
        None,
    )


def test_a_cache_hit_needs_no_claim_and_records_its_job_and_hash(store):
    # Given an object version nobody has claimed (a copy costs nothing, so none is taken)
    job = new_job()
    job.content_hash = "ab" * 32
    # When it is completed from a twin's cutout
    assert store.mark_completed(job, NOW + 1, "cutouts/1.jpg.png", from_cache=True)
    # Then the job exists, COMPLETED from cache, with its identity and hash
    done = store.get(job.job_id)
    assert (done.status, done.from_cache, done.content_hash, done.lease_until) == (COMPLETED, True, "ab" * 32, None)
    assert (done.bucket, done.key, done.version, done.created_at) == ("b", "uploads/1.jpg", "etag", NOW + 1)
    # and a second delivery's copy does not complete it twice
    assert not store.mark_completed(job, NOW + 2, "cutouts/1.jpg.png", from_cache=True)


def test_a_cache_hit_does_not_end_a_job_that_is_being_paid_for(store):
    # Given a job claimed for its POST
    job = claimed(store)
    # When a cache hit for the same version tries to complete it
    # Then it is refused: the claim holder owns the outcome
    assert not store.mark_completed(job, NOW + 1, "cutouts/1.jpg.png", from_cache=True)
    assert store.get(job.job_id).status == SUBMITTING


def test_mark_final_from_a_stale_view_changes_nothing(store):
    job = claimed(store)
    store.mark_submitted(job.job_id, 1, "rid-1", NOW)
    assert not store.mark_final(job, FAILED, NOW, "x", "stale SUBMITTING view")
    current = store.get(job.job_id)
    assert store.mark_final(current, FAILED, NOW, "model-failed", "boom")
    assert store.get(job.job_id).status == FAILED


def test_resubmission_bumps_the_attempt_and_forgets_the_request(store):
    job = claimed(store)
    store.mark_submitted(job.job_id, 1, "rid-1", NOW)
    assert not store.mark_resubmit(job.job_id, "rid-other", NOW, "ERROR")
    assert store.mark_resubmit(job.job_id, "rid-1", NOW, "ERROR")
    job = store.get(job.job_id)
    assert job.status == RESUBMIT
    assert store.claim_resubmission(job, NOW + 1, 120)
    assert not store.claim_resubmission(job, NOW + 1, 120)
    again = store.get(job.job_id)
    assert (again.status, again.attempt, again.request_id) == (SUBMITTING, 2, None)


def test_record_latest_keeps_the_newest_sequencer(store):
    # Given the newer event arrives first
    newer, older = padded_sequencer("0055AED6DCD90281E6"), padded_sequencer("55AED6DCD90281E5")
    assert store.record_latest("b", "uploads/x.jpg", newer, "job-new", NOW)
    # When the older one arrives
    # Then it is refused and the newer job stays the latest
    assert not store.record_latest("b", "uploads/x.jpg", older, "job-old", NOW)
    assert store.latest_job_for("b", "uploads/x.jpg") == "job-new"
    # a duplicate of the newest event is accepted; a newer one takes over
    assert store.record_latest("b", "uploads/x.jpg", newer, "job-new", NOW)
    assert store.record_latest("b", "uploads/x.jpg", padded_sequencer("0155AED6DCD90281E5"), "job-newest", NOW)
    assert store.latest_job_for("b", "uploads/x.jpg") == "job-newest"


def test_sequencers_of_different_length_compare_numerically(store):
    assert store.record_latest("b", "k", padded_sequencer("0100"), "j256", NOW)
    assert not store.record_latest("b", "k", padded_sequencer("FF"), "j255", NOW)


def test_list_by_status_returns_only_old_enough_jobs_of_that_status_oldest_first(store):
    for n, t in ((1, NOW - 500), (2, NOW - 900), (3, NOW - 10)):
        job = claimed(store, n, t)
        store.mark_submitted(job.job_id, 1, f"rid-{n}", t)
    claimed(store, 4, NOW - 1000)  # SUBMITTING
    found = [j.job_id for j in store.list_by_status(SUBMITTED, NOW - 300)]
    assert found == [f"{2:032x}", f"{1:032x}"]
    assert [j.job_id for j in store.list_by_status(SUBMITTED, NOW, limit=1)] == [f"{2:032x}"]
    assert store.count_by_status(SUBMITTED) == 3
    assert list(store.list_by_status(IN_DOUBT, NOW)) == []


def test_list_by_status_pages_through_more_than_one_query_page(store, cutouts):
    items = [
        {
            "PutRequest": {
                "Item": {
                    "pk": {"S": f"job#{n:032x}"},
                    "job_id": {"S": f"{n:032x}"},
                    "bucket": {"S": "b"},
                    "key": {"S": f"uploads/{n}.jpg"},
                    "version": {"S": "e"},
                    "status": {"S": SUBMITTING},
                    "updated_at": {"N": str(NOW - n)},
                }
            }
        }
        for n in range(1, 131)
    ]
    for i in range(0, len(items), 25):
        cutouts.ddb.batch_write_item(RequestItems={cutouts.table: items[i : i + 25]})
    assert len(list(store.list_by_status(SUBMITTING, NOW, limit=500))) == 130


@pytest.mark.parametrize("operation", ["put_item", "update_item", "get_item", "query"])
def test_throttling_becomes_job_store_error(operation):
    # Given DynamoDB answers with throttling
    client = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    store = JobStore(client, "t")
    with Stubber(client) as stub:
        stub.add_client_error(operation, "ProvisionedThroughputExceededException", http_status_code=400)
        # When the store is used
        # Then the caller gets our own exception type, not ConditionalCheckFailed's False
        with pytest.raises(JobStoreError):
            if operation == "put_item":
                store.bind_request("rid", "a" * 32, NOW)
            elif operation == "update_item":
                store.mark_submitted("a" * 32, 1, "rid", NOW)
            elif operation == "get_item":
                store.get("a" * 32)
            else:
                list(store.list_by_status(SUBMITTED, NOW))


def test_conditional_check_failure_is_a_plain_false():
    client = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        stub.add_client_error("update_item", "ConditionalCheckFailedException", http_status_code=400)
        assert JobStore(client, "t").mark_submitted("a" * 32, 1, "rid", NOW) is False


def test_claim_refuses_a_job_in_any_state_but_retry(store, cutouts):
    # Given jobs left in each open or final state
    for n, status in enumerate((SUBMITTING, SUBMITTED, IN_DOUBT, RESUBMIT, COMPLETED, FAILED), start=10):
        job = claimed(store, n)
        cutouts.ddb.update_item(  # the state as another actor left it, written straight to the table
            TableName=cutouts.table,
            Key={"pk": {"S": f"job#{job.job_id}"}},
            UpdateExpression="SET #s = :s",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": status}},
        )
        # When a delivery tries to claim it again
        # Then it is refused and the record keeps its state and first claim time
        assert not store.claim(new_job(n), NOW + 5, 120)
        assert (store.get(job.job_id).status, store.get(job.job_id).created_at) == (status, NOW)


def test_a_transition_writes_only_what_the_table_says_it_writes(store):
    # Given a claimed job
    job = claimed(store)
    # When a caller tries to write an attribute its transition does not declare
    # Then nothing is written
    with pytest.raises(ValueError, match="does not write"):
        store.apply("in_doubt", job, NOW + 1, {"request_id": "smuggled"})
    assert store.get(job.job_id).request_id is None


def test_failing_a_job_that_was_superseded_meanwhile_is_refused(store):
    # Given a job read by one actor, then told by a newer version that it is superseded
    job = claimed(store)
    assert store.tell_superseded(job.job_id, "f" * 32, NOW + 1)
    # When the first actor fails it from its stale read
    # Then the write is refused (the caller ends it as SUPERSEDED instead)
    assert not store.mark_final(job, FAILED, NOW + 2, "model-failed", "x")
    assert store.mark_final(job, "SUPERSEDED", NOW + 2, "superseded", "x")
