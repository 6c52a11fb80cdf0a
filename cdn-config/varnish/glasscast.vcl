vcl 4.1;
# Varnish as a caching edge in front of one Glasscast origin. The rules, shared with
# fleet.vcl, are in glasscast-rules.vcl and explained in README.md next to this file.
# Placeholders: @ORIGIN_HOST@, @ORIGIN_PORT@.

backend origin {
    .host = "@ORIGIN_HOST@";
    .port = "@ORIGIN_PORT@";
    .connect_timeout = 2s;
    # Blocking playlist requests are held by the origin for up to three target durations.
    .first_byte_timeout = 30s;
    .between_bytes_timeout = 10s;
}

include "./glasscast-rules.vcl";
