"""The request path's JSON: what cannot be passed on is named on reading, and writing never
raises on a string that is not valid Unicode."""

import json

import pytest

from lowrouter import jsonio


@pytest.mark.parametrize(
    "raw, param",
    [
        (b'{"temperature": NaN}', "temperature"),
        (b'{"top_p": -Infinity}', "top_p"),
        (b'{"provider": {"max_price": {"prompt": 1e999}}}', "provider.max_price.prompt"),
        (b'{"messages": [{"content": "ok"}, {"content": "\\ud800"}]}', "messages[1].content"),
        (b'{"tools": [{"\\udc00": 1}]}', "tools[0]"),
    ],
)
def test_reading_a_request_names_where_the_value_that_cannot_be_sent_is(raw, param):
    with pytest.raises(jsonio.UnsendableValue) as refused:
        jsonio.loads_request(raw)
    assert refused.value.param == param
    assert param in str(refused.value)


def test_a_body_that_is_itself_unsendable_names_no_param():
    with pytest.raises(jsonio.UnsendableValue) as refused:
        jsonio.loads_request(b"NaN")
    assert refused.value.param is None


def test_a_surrogate_pair_is_one_character_and_is_read():
    assert jsonio.loads_request(b'{"a": "\\ud83d\\ude00"}') == {"a": "\U0001f600"}


def test_writing_a_lone_surrogate_escapes_it_instead_of_raising():
    written = jsonio.dumps({"content": "a\ud800b", "n": 2**70})
    assert written == b'{"content":"a\\ud800b","n":1180591620717411303424}'
    assert json.loads(written) == {"content": "a\ud800b", "n": 2**70}
