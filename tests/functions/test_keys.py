from functions_kit import encode_key

from cutouts.keys import decode_event_key, failure_key_for, job_id_for, output_key_for, padded_sequencer


def test_event_key_plus_is_a_space_and_percent_2b_is_a_plus():
    # Given the key S3 writes into an event for "uploads/red flower+é.jpg"
    raw = "uploads/red+flower%2B%C3%A9.jpg"
    # When it is decoded
    key = decode_event_key(raw)
    # Then spaces, plus signs and unicode all come back
    assert key == "uploads/red flower+é.jpg"


def test_event_key_round_trips_deep_folders_percent_and_unicode():
    for key in ("uploads/a/b/c/d/e/f/deep 100% ✓.png", "uploads/ünï cødé/猫.webp", "uploads/a+b=c&d.jpg"):
        assert decode_event_key(encode_key(key)) == key


def test_output_keys_are_one_to_one_for_same_stem_different_extension():
    # Given two sources that differ only by extension
    jpg, png = "uploads/pets/cat.jpg", "uploads/pets/cat.png"
    # When both are mapped to output and failure keys
    outs = {output_key_for(k, "uploads/", "cutouts/") for k in (jpg, png)}
    fails = {failure_key_for(k, "uploads/", "failed/") for k in (jpg, png)}
    # Then they never share a key
    assert outs == {"cutouts/pets/cat.jpg.png", "cutouts/pets/cat.png.png"}
    assert fails == {"failed/pets/cat.jpg.json", "failed/pets/cat.png.json"}


def test_key_outside_input_prefix_has_no_output_key():
    import pytest

    with pytest.raises(ValueError):
        output_key_for("cutouts/cat.jpg.png", "uploads/", "cutouts/")


def test_job_id_is_deterministic_and_depends_on_bucket_key_and_version():
    base = job_id_for("b", "uploads/cat.jpg", "v1")
    assert base == job_id_for("b", "uploads/cat.jpg", "v1")
    assert len(base) == 32 and all(ch in "0123456789abcdef" for ch in base)
    others = {
        job_id_for("b2", "uploads/cat.jpg", "v1"),
        job_id_for("b", "uploads/cat.jpeg", "v1"),
        job_id_for("b", "uploads/cat.jpg", "v2"),
    }
    assert base not in others and len(others) == 3


def test_padded_sequencers_compare_as_numbers():
    short, long_ = "FF", "0100"  # 255 < 256
    assert padded_sequencer(short) < padded_sequencer(long_)
    assert padded_sequencer("0055aed6dcd90281e5") == padded_sequencer("0055AED6DCD90281E5")
