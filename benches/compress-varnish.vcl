vcl 4.1;
# Varnish 7.1 compressing JSON (benches/compress.sh): the built-in VCL plus do_gzip for
# application/json, without which Varnish passes an uncompressed backend response on as
# it is. Varnish stores the gzipped body once and serves it to clients that accept gzip
# (it has no brotli). {origin_port} is filled by benches/compress.sh.
backend default {
    .host = "127.0.0.1";
    .port = "{origin_port}";
    .connect_timeout = 5s;
    .first_byte_timeout = 30s;
}

sub vcl_backend_response {
    if (beresp.http.Content-Type ~ "^application/json") {
        set beresp.do_gzip = true;
    }
}
