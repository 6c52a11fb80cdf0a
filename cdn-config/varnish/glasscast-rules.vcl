# The caching rules of a Varnish edge in front of Glasscast, included by glasscast.vcl (one
# origin) and fleet.vcl (a fleet); explained in README.md next to this file.

sub vcl_recv {
    # Only media and liveness reach the origin (metrics and the management API are on the
    # relay's admin listener, never behind the CDN).
    if (req.url !~ "^/live/" && req.url != "/healthz" && req.url != "/time") {
        return (synth(404));
    }
    # The origin's clock, which DASH players synchronise with (UTCTiming): never cached.
    if (req.url == "/time") {
        return (pass);
    }
    if (req.method != "GET" && req.method != "HEAD") {
        return (pass);
    }
    # Playback carries no cookies or credentials worth varying on; never let them defeat the cache.
    unset req.http.Cookie;
    unset req.http.Authorization;
    # The hash is the default: host + full URL, query included, so every
    # _HLS_msn/_HLS_part/_HLS_skip combination is its own object.
    return (hash);
}

sub vcl_backend_response {
    # Errors are never kept, and never turned into two-minute hit-for-miss objects that would
    # stop request coalescing for that URL.
    if (beresp.status >= 400) {
        set beresp.ttl = 0s;
        set beresp.grace = 0s;
        set beresp.uncacheable = true;
        return (deliver);
    }
    # Plain playlists and the MPD are `no-cache`: always from the origin. Short hit-for-miss.
    if (beresp.http.Cache-Control ~ "no-cache|no-store|private") {
        set beresp.ttl = 1s;
        set beresp.uncacheable = true;
        return (deliver);
    }
    # Everything else keeps the origin's lifetime (media: a year, immutable; directive
    # playlists: 2 s). Media is served while it streams in from the origin: a part or segment
    # still being made reaches every viewer waiting on it chunk by chunk (LL-DASH, and the
    # LL-HLS preload hint).
    set beresp.do_stream = true;
    # A stale directive playlist still answers its question (that part exists), so a short
    # grace is harmless; media never changes.
    set beresp.grace = 2s;
    return (deliver);
}

sub vcl_deliver {
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
}
