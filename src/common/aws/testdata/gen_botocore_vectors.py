#!/usr/bin/env python3
"""Writes the botocore-*.{req,creq,sts,authz} vectors of this folder: requests of AWS's published
SigV4 test suite (the cases whose paths are already normalised, with paths and queries in their
percent-encoded wire form), with the expected canonical request, string to sign and Authorization
header computed by botocore's SigV4Auth, an independent implementation that passes the suite.
Needs botocore (the pyenv python3 of this machine kind has it); the files are committed, so the
C++ test (sigv4_test.cpp) needs nothing. Rerun: python3 gen_botocore_vectors.py
"""
import pathlib

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

HERE = pathlib.Path(__file__).resolve().parent
DATE = "20150830T123600Z"
HOST = "example.amazonaws.com"
CREDENTIALS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
UNRESERVED = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

# name: (method, wire target, extra headers in order, body)
CASES = {
    "get-header-value-trim": ("GET", "/", [("My-Header1", " value1"),
                                           ("My-Header2", ' "a   b   c"')], b""),
    "get-unreserved": ("GET", "/" + UNRESERVED, [], b""),
    "get-utf8": ("GET", "/%E1%88%B4", [], b""),
    "get-space": ("GET", "/example%20space/", [], b""),
    "get-vanilla-query-unreserved": ("GET", f"/?{UNRESERVED}={UNRESERVED}", [], b""),
    "get-vanilla-utf8-query": ("GET", "/?%E1%88%B4=bar", [], b""),
    "get-vanilla-query-order-value": ("GET", "/?Param1=value2&Param1=value1", [], b""),
    "get-vanilla-query-order-key": ("GET", "/?Param2=value2&Param1=value1", [], b""),
    "get-vanilla-empty-query-key": ("GET", "/?Param1=value1", [], b""),
    "post-header-key-case": ("POST", "/", [], b""),
    "post-header-key-sort": ("POST", "/", [("My-Header1", "value1")], b""),
    "post-header-value-case": ("POST", "/", [("My-Header1", "VALUE1")], b""),
    "post-vanilla-query": ("POST", "/?Param1=value1", [], b""),
    "post-x-www-form-urlencoded-parameters": (
        "POST", "/", [("Content-Type", "application/x-www-form-urlencoded; charset=utf8")],
        b"Param1=value1"),
}


def main():
    for name, (method, target, extra, body) in CASES.items():
        headers = [("Host", HOST), ("X-Amz-Date", DATE)] + extra
        request = AWSRequest(method=method, url=f"https://{HOST}{target}", headers=dict(headers),
                             data=body)
        request.context["timestamp"] = DATE
        auth = SigV4Auth(CREDENTIALS, "service", "us-east-1")
        creq = auth.canonical_request(request)
        sts = auth.string_to_sign(request, creq)
        signed = auth.signed_headers(auth.headers_to_sign(request))
        authz = (f"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
                 f"aws4_request, SignedHeaders={signed}, Signature={auth.signature(sts, request)}")
        req = f"{method} {target} HTTP/1.1\n" + "".join(f"{k}:{v}\n" for k, v in headers) + "\n"
        stem = HERE / f"botocore-{name}"
        stem.with_suffix(".req").write_bytes(req.encode() + body)
        stem.with_suffix(".creq").write_text(creq)
        stem.with_suffix(".sts").write_text(sts)
        stem.with_suffix(".authz").write_text(authz)


if __name__ == "__main__":
    main()
