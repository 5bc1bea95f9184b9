from rest_framework import parsers
from rest_framework.exceptions import ParseError

from loopsync import jsonsafe

MAX_DEPTH = 32
TOO_DEEP = f"The body is not valid JSON for this API: it is nested more than {MAX_DEPTH} levels deep (the API's limit)."


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, with nesting bounded: `[[[[…` 50,000 deep is a 400, not a RecursionError."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(TOO_DEEP) from None
        if jsonsafe.depth_exceeds(data, MAX_DEPTH):
            raise ParseError(TOO_DEEP)
        return data
