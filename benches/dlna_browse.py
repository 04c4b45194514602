#!/usr/bin/env python3
"""Finds a ContentDirectory container by titles and checks a walk of it.

    dlna_browse.py CONTROL_URL TITLE_PATH TOTAL [PAGE] [SORT]

CONTROL_URL is the ContentDirectory control URL; TITLE_PATH is a
slash-separated list of container titles leading from the root ("0") to the
container (each found by a BrowseDirectChildren of its parent). The
container is walked page by page, checking that the pages add up to TOTAL
items; prints the container's id. benches/dlna.sh times the walks with curl
(this script's own parsing would dominate the numbers). Stdlib only.
"""
import html
import re
import sys
import urllib.parse
import http.client

CDS = "urn:schemas-upnp-org:service:ContentDirectory:1"


def call(url, object_id, start, count, sort=""):
    u = urllib.parse.urlsplit(url)
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
        's:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>'
        f'<u:Browse xmlns:u="{CDS}"><ObjectID>{html.escape(object_id)}</ObjectID>'
        "<BrowseFlag>BrowseDirectChildren</BrowseFlag><Filter>*</Filter>"
        f"<StartingIndex>{start}</StartingIndex><RequestedCount>{count}</RequestedCount>"
        f"<SortCriteria>{sort}</SortCriteria></u:Browse></s:Body></s:Envelope>"
    ).encode()
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    c.request(
        "POST",
        u.path,
        body,
        {
            "Content-Type": 'text/xml; charset="utf-8"',
            "SOAPACTION": f'"{CDS}#Browse"',
            "Connection": "close",
        },
    )
    r = c.getresponse()
    data = r.read().decode("utf-8", "replace")
    c.close()
    if r.status != 200:
        raise SystemExit(f"Browse {object_id} answered {r.status}: {data[:300]}")
    result = html.unescape(re.search(r"<Result>(.*)</Result>", data, re.S).group(1))
    returned = int(re.search(r"<NumberReturned>(\d+)</NumberReturned>", data).group(1))
    total = int(re.search(r"<TotalMatches>(\d+)</TotalMatches>", data).group(1))
    return result, returned, total


def containers(didl):
    out = []
    for m in re.finditer(r"<container ([^>]*)>(.*?)</container>", didl, re.S):
        oid = html.unescape(re.search(r'\bid="([^"]*)"', m.group(1)).group(1))
        title = html.unescape(re.search(r"<dc:title>(.*?)</dc:title>", m.group(2), re.S).group(1))
        out.append((oid, title))
    return out


def find(url, titles):
    oid = "0"
    for t in titles:
        didl, _, _ = call(url, oid, 0, 0)
        match = [c for c in containers(didl) if c[1] == t]
        if not match:
            raise SystemExit(f"no container {t!r} under {oid}: {containers(didl)}")
        oid = match[0][0]
    return oid


def main():
    url, path, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
    page = int(sys.argv[4]) if len(sys.argv) > 4 else 100
    sort = sys.argv[5] if len(sys.argv) > 5 else ""
    oid = find(url, [t for t in path.split("/") if t])
    seen = 0
    while seen < total:
        didl, returned, matches = call(url, oid, seen, page, sort)
        if matches != total or returned == 0:
            raise SystemExit(f"{oid}: TotalMatches {matches}, NumberReturned {returned} at {seen}")
        if didl.count("<item") != returned:
            raise SystemExit(f"{oid}: {returned} returned but {didl.count('<item')} items")
        seen += returned
    print(oid)


if __name__ == "__main__":
    main()
