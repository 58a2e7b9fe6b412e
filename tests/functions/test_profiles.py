import json
import sys
from pathlib import Path

import pytest

from cutouts.profiles import (
    DEFAULT,
    ImageFormat,
    Margin,
    OutputSpec,
    Position,
    ProfileError,
    Profiles,
    UnknownProfile,
    output_key,
)

FUNCTIONS_DIR = Path(__file__).resolve().parents[2] / "functions"
SHOP = {
    "profiles": {
        "default": {"outputs": [{"name": "cutout", "format": "png"}]},
        "shop": {
            "match": "shop/",
            "outputs": [
                {"name": "cutout", "format": "png"},
                {
                    "name": "white",
                    "format": "jpeg",
                    "background": "#FFFFFF",
                    "crop": "subject",
                    "margin": "8%",
                    "canvas": [2000, 2000],
                    "position": "center",
                    "quality": 90,
                },
                {"name": "web", "format": "webp", "maxSize": 1024},
                {"name": "mask", "format": "png", "mask": True},
            ],
        },
    }
}


def with_output(**fields):
    """A document whose one profile "p" has one output named "o" with these fields."""
    return {"profiles": {"p": {"outputs": [{"name": "o", **fields}]}}}


def test_the_issue_example_parses_to_four_shop_outputs():
    # Given the issue's example document
    # When it is parsed
    profiles = Profiles.parse(SHOP)
    # Then the shop profile has its four outputs with their fields
    shop = profiles.profiles["shop"]
    white = shop.outputs[1]
    assert [o.name for o in shop.outputs] == ["cutout", "white", "web", "mask"]
    assert white == OutputSpec(
        name="white",
        format=ImageFormat.JPEG,
        background=(255, 255, 255),
        crop="subject",
        margin=Margin(percent=8.0),
        canvas=(2000, 2000),
        position=Position.CENTER,
        quality=90,
    )
    assert shop.outputs[2].max_size == 1024 and shop.outputs[3].mask


@pytest.mark.parametrize(
    ("doc", "profile", "output", "field", "words"),
    [
        (with_output(fromat="png"), "p", "o", "fromat", 'did you mean "format"'),
        (with_output(format="gif"), "p", "o", "format", "png | jpeg | webp"),
        (with_output(format="jpeg", background="transparent"), "p", "o", "background", "jpeg has no transparency"),
        (with_output(background="#FFF"), "p", "o", "background", "#RRGGBB"),
        (with_output(background="white"), "p", "o", "background", "#RRGGBB"),
        (with_output(margin="120%"), "p", "o", "margin", "0-100%"),
        (with_output(margin="8 %"), "p", "o", "margin", "percentage"),
        (with_output(margin=-3), "p", "o", "margin", "pixels"),
        (with_output(margin=True), "p", "o", "margin", "pixels"),
        (with_output(canvas=[2000]), "p", "o", "canvas", "[width, height]"),
        (with_output(canvas=[0, 10]), "p", "o", "canvas", "1-10000"),
        (with_output(canvas=[20000, 10]), "p", "o", "canvas", "1-10000"),
        (with_output(canvas=[10.5, 10]), "p", "o", "canvas", "[width, height]"),
        (with_output(position="top", canvas=[10, 10]), "p", "o", "position", "center"),
        (with_output(position="bottom"), "p", "o", "position", "add canvas"),
        (with_output(quality=90), "p", "o", "quality", "lossy"),
        (with_output(format="webp", quality=0), "p", "o", "quality", "1-100"),
        (with_output(format="jpeg", quality=101), "p", "o", "quality", "1-100"),
        (with_output(maxSize=0), "p", "o", "maxSize", "1-16384"),
        (with_output(maxSize="1024"), "p", "o", "maxSize", "whole number"),
        (with_output(crop="tight"), "p", "o", "crop", '"subject"'),
        (with_output(mask="yes"), "p", "o", "mask", "true or false"),
        (with_output(mask=True, format="jpeg"), "p", "o", "mask", "use format png"),
        (with_output(mask=True, background="#000000"), "p", "o", "background", "mask has no background"),
        ({"profiles": {"p": {"outputs": [{"name": "Big Shot"}]}}}, "p", None, "name", "a-z, 0-9"),
        ({"profiles": {"p": {"outputs": [{"name": "x"}, {"name": "x"}]}}}, "p", "x", "name", "collide"),
        ({"profiles": {"p": {"outputs": []}}}, "p", None, "outputs", "at least one"),
        ({"profiles": {"p": {"outputs": [{"name": "a"}], "mtach": "a/"}}}, "p", None, "mtach", '"match"'),
        ({"profiles": {"p": {"match": "shop", "outputs": [{"name": "a"}]}}}, "p", None, "match", 'ending in "/"'),
        ({"profiles": {"p": {"match": "/shop/", "outputs": [{"name": "a"}]}}}, "p", None, "match", "sub-prefix"),
        (
            {
                "profiles": {
                    "a": {"match": "s/", "outputs": [{"name": "x"}]},
                    "b": {"match": "s/", "outputs": [{"name": "x"}]},
                }
            },
            "b",
            None,
            "match",
            'profile "a"',
        ),
        ({"profiles": {"default": {"match": "x/", "outputs": [{"name": "a"}]}}}, "default", None, "match", "no match"),
        ({"profiles": {"Shop!": {"outputs": [{"name": "a"}]}}}, "Shop!", None, "name", "a-z"),
        ({"profiles": {}}, "", None, "profiles", "at least one"),
        ({"profile": {}}, "", None, "profile", 'did you mean "profiles"'),
    ],
)
def test_a_bad_document_names_its_profile_output_and_field(doc, profile, output, field, words):
    # Given a document with one mistake
    # When it is parsed
    with pytest.raises(ProfileError) as info:
        Profiles.parse(doc)
    # Then the error names where the mistake is and says what is expected
    error = info.value
    assert (error.profile, error.output, error.field) == (profile, output, field)
    assert f'field "{field}"' in str(error)
    assert words in str(error)
    if output is not None:
        assert f'profile "{profile}", output "{output}"' in str(error)


def test_jpeg_without_background_is_white_and_png_is_transparent():
    # Given a jpeg and a png output with no background
    profiles = Profiles.parse({"profiles": {"p": {"outputs": [{"name": "j", "format": "jpeg"}, {"name": "p"}]}}})
    # Then the jpeg's background is white and the png's transparent
    jpeg, png = profiles.profiles["p"].outputs
    assert jpeg.background == (255, 255, 255)
    assert png.background is None


def test_a_missing_default_profile_is_todays_single_png_cutout():
    # Given a document that declares only "shop"
    profiles = Profiles.parse(
        {"profiles": {"shop": {"match": "shop/", "outputs": [{"name": "web", "format": "webp"}]}}}
    )
    # Then "default" exists and is one png cutout with today's key
    assert profiles.profiles["default"] == DEFAULT
    assert DEFAULT.is_plain_cutout()
    assert output_key("cutouts/", "cat.jpg", DEFAULT.outputs[0]) == "cutouts/cat.jpg.png"
    assert Profiles.default().profiles == {"default": DEFAULT}
    assert not Profiles.default().needs_rendering()
    assert profiles.needs_rendering()


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("cat.jpg", "default"),
        ("shop/shoe.jpg", "shop"),
        ("shop/sale/shoe.jpg", "sale"),
        ("shop/sale", "shop"),  # a file named like the folder is not in it
        ("shopping/bag.jpg", "default"),
        ("other/shop/x.jpg", "default"),  # match is a prefix of the relative key, not anywhere in it
    ],
)
def test_the_longest_match_wins_and_default_takes_the_rest(key, expected):
    # Given two nested matches
    profiles = Profiles.parse(
        {
            "profiles": {
                "sale": {"match": "shop/sale/", "outputs": [{"name": "cutout"}]},
                "shop": {"match": "shop/", "outputs": [{"name": "cutout"}]},
            }
        }
    )
    # When a key is matched
    # Then the longest match wins
    assert profiles.choose(key).name == expected


def test_the_metadata_name_wins_over_the_match():
    # Given the shop profiles
    profiles = Profiles.parse(SHOP)
    # When an upload under shop/ asks for "default", and one elsewhere asks for "shop"
    # Then each gets the profile it asked for
    assert profiles.choose("shop/shoe.jpg", "default").name == "default"
    assert profiles.choose("cat.jpg", " shop ").name == "shop"
    assert profiles.choose("cat.jpg", "").name == "default"


def test_an_unknown_requested_profile_is_an_error_with_a_suggestion():
    # Given the shop profiles
    profiles = Profiles.parse(SHOP)
    # When an upload asks for a name that is not declared
    with pytest.raises(UnknownProfile) as info:
        profiles.choose("shop/shoe.jpg", "shpo")
    # Then the error says so, lists what is declared and suggests the nearest
    assert info.value.reason == "unknown-profile"
    assert "default, shop" in str(info.value)
    assert 'did you mean "shop"' in str(info.value)


def test_output_keys_keep_todays_cutout_key_and_name_the_others():
    # Given the shop profile
    shop = Profiles.parse(SHOP).profiles["shop"]
    # When the keys of uploads/shop/shoe.jpg's outputs are made
    keys = [output_key("cutouts/", "shop/shoe.jpg", spec) for spec in shop.outputs]
    # Then cutout keeps today's key and the others carry their name and extension
    assert keys == [
        "cutouts/shop/shoe.jpg.png",
        "cutouts/shop/shoe.jpg.white.jpg",
        "cutouts/shop/shoe.jpg.web.webp",
        "cutouts/shop/shoe.jpg.mask.png",
    ]
    assert [spec.content_type() for spec in shop.outputs] == ["image/png", "image/jpeg", "image/webp", "image/png"]
    assert OutputSpec("cutout", ImageFormat.JPEG).key_suffix() == ".cutout.jpg"


def test_to_json_round_trips_and_is_canonical():
    # Given the shop profiles and a document with every field
    every = {
        "profiles": {
            "all": {
                "match": "all/",
                "outputs": [
                    {"name": "a", "format": "webp", "background": "#10ab2C", "crop": "subject", "margin": 24},
                    {"name": "b", "format": "avif", "canvas": [10, 20], "position": "bottom", "margin": "2.5%"},
                    {"name": "c", "format": "jpeg", "maxSize": 64, "quality": 70},
                ],
            }
        }
    }
    for doc in (SHOP, every):
        profiles = Profiles.parse(doc)
        # When it is written as JSON and parsed again
        text = profiles.to_json()
        again = Profiles.parse(json.loads(text))
        # Then the profiles are equal and the JSON is the same text
        assert again == profiles
        assert again.to_json() == text
        assert "\n" not in text and ": " not in text


def test_load_reads_a_file_and_names_bad_json(tmp_path):
    # Given a good and a broken file
    good = tmp_path / "profiles.json"
    good.write_text(json.dumps(SHOP))
    bad = tmp_path / "bad.json"
    bad.write_text('{"profiles": {')
    # When they are loaded
    # Then the good one parses and the broken one raises ProfileError naming the file and place
    assert Profiles.load(good) == Profiles.parse(SHOP)
    with pytest.raises(ProfileError, match=r"bad\.json is not valid JSON.*line 1"):
        Profiles.load(bad)
    with pytest.raises(ProfileError, match="cannot read"):
        Profiles.load(tmp_path / "missing.json")


def test_profiles_does_not_import_pillow():
    # Given a fresh interpreter state without PIL
    # Then importing profiles (done above) did not load PIL (the submit and webhook paths import it)
    import subprocess

    code = "import sys; import cutouts.profiles; print('PIL' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONPATH": str(FUNCTIONS_DIR)}
    )
    assert out.stdout.strip() == "False"


def test_the_demo_profiles_file_is_the_issue_example():
    # Given the profiles file `make demo` runs with
    from pathlib import Path

    demo = Path(__file__).resolve().parents[2] / "samples" / "profiles.json"
    # When it is loaded
    profiles = Profiles.load(demo)
    # Then it is the issue's shop profile and today's default, and the shop samples choose it
    assert profiles == Profiles.parse(SHOP)
    assert profiles.choose("shop/sneaker.jpg").name == "shop"
    assert profiles.choose("red apple.jpg").name == "default"
