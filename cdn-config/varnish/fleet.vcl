vcl 4.1;
# Varnish as a caching edge in front of a fleet of Glasscast nodes: the same rules as
# glasscast.vcl (glasscast-rules.vcl), with requests spread round robin over every node.
# Any node answers for any stream (a node that does not hold it asks the owner), so no
# stickiness is needed. One backend per node; placeholders @NODE1_HOST@, @NODE1_PORT@, …

import directors;

backend node1 {
    .host = "@NODE1_HOST@";
    .port = "@NODE1_PORT@";
    .connect_timeout = 2s;
    # Blocking playlist requests are held for up to three target durations.
    .first_byte_timeout = 30s;
    .between_bytes_timeout = 10s;
    .probe = { .url = "/healthz"; .interval = 1s; .timeout = 1s; .window = 3; .threshold = 2; }
}

backend node2 {
    .host = "@NODE2_HOST@";
    .port = "@NODE2_PORT@";
    .connect_timeout = 2s;
    .first_byte_timeout = 30s;
    .between_bytes_timeout = 10s;
    .probe = { .url = "/healthz"; .interval = 1s; .timeout = 1s; .window = 3; .threshold = 2; }
}

backend node3 {
    .host = "@NODE3_HOST@";
    .port = "@NODE3_PORT@";
    .connect_timeout = 2s;
    .first_byte_timeout = 30s;
    .between_bytes_timeout = 10s;
    .probe = { .url = "/healthz"; .interval = 1s; .timeout = 1s; .window = 3; .threshold = 2; }
}

sub vcl_init {
    new fleet = directors.round_robin();
    fleet.add_backend(node1);
    fleet.add_backend(node2);
    fleet.add_backend(node3);
}

# Runs before the shared vcl_recv (VCL joins subroutines of the same name in order).
sub vcl_recv {
    set req.backend_hint = fleet.backend();
}

include "./glasscast-rules.vcl";
