#!/usr/bin/env python3
# Writes src/admin/openapi.json (the management API document served at /v1/openapi.json).
# Edit this script, run it, and commit both.
import json
def err(desc, codes):
    return {"description": desc + " (`error` is one of: " + ", ".join(codes) + ")",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
def ok(desc, ref):
    return {"description": desc, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}
auth_errs = {
  "401": err("Missing or wrong bearer token", ["UNAUTHORIZED"]),
  "403": err("No admin.token configured and the admin listener is not on loopback", ["NOT_AUTHORIZED"]),
}
def with_auth(d):
    r = dict(d); r.update(auth_errs); return r
user = {"name":"userId","in":"path","required":True,"description":"The publisher's user id, percent-encoded (`alice%40example.com`).","schema":{"type":"string","minLength":1},"example":"alice@example.com"}
stream = {"name":"streamId","in":"path","required":True,"description":"The stream id (unique per user).","schema":{"type":"string","minLength":1},"example":"m1"}
output = {"name":"outputId","in":"path","required":True,"schema":{"type":"string","minLength":1},"example":"0123456789ab"}
keyid = {"name":"keyId","in":"path","required":True,"description":"Hex SHA-256 of the key.","schema":{"type":"string","minLength":1}}
pkg = {"name":"X-Package-Name","in":"header","required":True,"description":"The app acting; outputs belong to the app that added them.","schema":{"type":"string","minLength":1,"maxLength":256,"pattern":"^[!-~]+$"},"example":"com.example.app"}
bad = err("Invalid request", ["INVALID_REQUEST"])
nf_stream = err("No live stream with this userId and streamId", ["STREAM_NOT_FOUND"])
doc = {
 "openapi": "3.1.0",
 "info": {"title": "Glasscast management API", "version": "1",
   "description": "Served on the admin listener (`admin.listen`), never on the viewer-facing one. Every operation needs `Authorization: Bearer <admin.token>`; with no token configured the API answers only when the admin listener is on loopback. Stream keys are shown once (on creation); restream URLs always come back with the key replaced by `***`."},
 "servers": [{"url": "/"}],
 "security": [{"bearer": []}, {}],
 "paths": {
  "/v1/streams": {"get": {"operationId":"listStreams","summary":"Live streams (and those in their reconnect grace period)",
     "responses": with_auth({"200": ok("The streams","StreamList")})}},
  "/v1/streams/{userId}/{streamId}": {
     "parameters":[user, stream],
     "get": {"operationId":"getStream","summary":"One stream","responses": with_auth({"200": ok("The stream","Stream"), "400": bad, "404": nf_stream})},
     "delete": {"operationId":"kickStream","summary":"End the stream now: the publisher is disconnected, playlists end","responses": with_auth({"204":{"description":"Ended"}, "400": bad, "404": nf_stream})}},
  "/v1/streams/{userId}/{streamId}/outputs": {
     "parameters":[user, stream],
     "get": {"operationId":"listOutputs","summary":"Restream outputs of a stream (from the API, the cloud and the configuration)","responses": with_auth({"200": ok("The outputs","OutputList"), "400": bad, "404": nf_stream})},
     "post": {"operationId":"addOutput","summary":"Add a restream output on behalf of an app","parameters":[pkg],
        "requestBody":{"required":True,"content":{"application/json":{"schema":{"$ref":"#/components/schemas/OutputCreate"}}}},
        "responses": with_auth({"201": dict(ok("Added","OutputCreated"), links={"RemoveOutput": {"operationId":"removeOutput","parameters":{"userId":"$request.path.userId","streamId":"$request.path.streamId","outputId":"$response.body#/outputId"}}}),
           "400": err("Invalid request or URL", ["INVALID_REQUEST","INVALID_URL"]),
           "404": nf_stream,
           "409": err("Limit reached or URL already used", ["MAX_OUTPUTS_REACHED","MAX_APP_OUTPUTS_REACHED","DUPLICATE_URL"])})}},
  "/v1/streams/{userId}/{streamId}/outputs/{outputId}": {
     "parameters":[user, stream, output],
     "delete": {"operationId":"removeOutput","summary":"Remove an output (only the app that added it may)","parameters":[pkg],
        "responses": with_auth({"204":{"description":"Removed"}, "400": bad,
           "403": err("Another app added this output, or it comes from the cloud or the configuration; or the API is not on loopback without a token", ["NOT_AUTHORIZED"]),
           "404": err("No such stream or output", ["STREAM_NOT_FOUND","OUTPUT_NOT_FOUND"])})}},
  "/v1/keys": {
     "get": {"operationId":"listKeys","summary":"Stream keys (metadata only, never a key)",
        "parameters":[{"name":"userId","in":"query","required":False,"schema":{"type":"string"}}],
        "responses": with_auth({"200": ok("The keys","KeyList"), "400": bad, "503": err("The key store is unavailable", ["STORE_UNAVAILABLE"])})},
     "post": {"operationId":"createKey","summary":"Create a stream key; the answer is the only time it is shown",
        "requestBody":{"required":True,"content":{"application/json":{"schema":{"$ref":"#/components/schemas/KeyCreate"}}}},
        "responses": with_auth({"201": dict(ok("Created","KeyCreated"), links={"RevokeKey": {"operationId":"revokeKey","parameters":{"keyId":"$response.body#/keyId"}}}), "400": err("Invalid request (including an alias already in use)", ["INVALID_REQUEST"]), "503": err("The key store is unavailable", ["STORE_UNAVAILABLE"])})}},
  "/v1/keys/{keyId}": {
     "parameters":[keyid],
     "delete": {"operationId":"revokeKey","summary":"Revoke a key at once (on every relay sharing the store)",
        "responses": with_auth({"204":{"description":"Revoked"}, "400": bad, "404": err("No such key", ["KEY_NOT_FOUND"]), "503": err("The key store is unavailable", ["STORE_UNAVAILABLE"])})}}
 },
 "components": {
  "securitySchemes": {"bearer": {"type":"http","scheme":"bearer","description":"admin.token"}},
  "schemas": {
   "Error": {"type":"object","required":["error","message"],"properties":{"error":{"type":"string"},"message":{"type":"string"}}},
   "Output": {"type":"object","required":["outputId","url","name","addedBy","status","error"],"properties":{
      "outputId":{"type":"string"},
      "url":{"type":"string","description":"With the stream key replaced by ***"},
      "name":{"type":"string"},
      "addedBy":{"type":"string","description":"The app's package name, `cloud` or `config`"},
      "status":{"type":"string","enum":["active","connecting","error","stopped"]},
      "error":{"type":["string","null"]}}},
   "OutputList": {"type":"object","required":["streamId","outputs","total","maxPerStream","maxPerApp"],"properties":{
      "streamId":{"type":"string"},"outputs":{"type":"array","items":{"$ref":"#/components/schemas/Output"}},
      "total":{"type":"integer","minimum":0},"maxPerStream":{"type":"integer","const":10},"maxPerApp":{"type":"integer","const":10}}},
   "OutputCreate": {"type":"object","required":["url"],"properties":{
      "url":{"type":"string","description":"rtmp://host[:port]/app/streamKey or rtmps://…","example":"rtmp://127.0.0.1:1935/live/example-key"},
      "name":{"type":"string","maxLength":200}}},
   "OutputCreated": {"type":"object","required":["outputId"],"properties":{"outputId":{"type":"string"}}},
   "Delivery": {"type":"object","required":["mode","serving","platform","platformStatus","platformHlsUrl","platformDashUrl","platformViewers","forwardStatus","error"],"properties":{
      "mode":{"type":"string","enum":["self","cloudflare","ivs","ab"],"description":"The delivery mode asked for (configuration, or the cloud's `mode`)"},
      "serving":{"type":"string","enum":["self","cloudflare","ivs","ab","none"],"description":"What serves viewers now (`self` after a fallback)"},
      "platform":{"type":["string","null"],"enum":["cloudflare","ivs",None]},
      "platformStatus":{"type":["string","null"],"enum":["connecting","active","error","stopped",None]},
      "platformHlsUrl":{"type":["string","null"]},"platformDashUrl":{"type":["string","null"]},
      "platformViewers":{"type":["integer","null"],"minimum":0},
      "forwardStatus":{"type":["string","null"],"description":"The pusher forwarding to the platform's ingest"},
      "error":{"type":["string","null"],"description":"Why the platform does not serve the stream"}}},
   "Stream": {"type":"object","required":["userId","streamId","state","startedAt","clientIp","reconnects","bytesIn","viewers","hlsUrl","dashUrl","outputs","delivery"],"properties":{
      "userId":{"type":"string"},"streamId":{"type":"string"},
      "state":{"type":"string","enum":["live","reconnecting"]},
      "startedAt":{"type":"string","format":"date-time"},
      "clientIp":{"type":["string","null"]},
      "reconnects":{"type":"integer","minimum":0},
      "bytesIn":{"type":"integer","minimum":0},
      "viewers":{"type":"integer","minimum":0,"description":"Distinct HLS/DASH sessions in the last 30 s"},
      "hlsUrl":{"type":"string"},"dashUrl":{"type":"string"},
      "outputs":{"type":"array","items":{"$ref":"#/components/schemas/Output"}},
      "delivery":{"$ref":"#/components/schemas/Delivery"}}},
   "StreamList": {"type":"object","required":["streams"],"properties":{"streams":{"type":"array","items":{"$ref":"#/components/schemas/Stream"}}}},
   "KeyCreate": {"type":"object","required":["userId"],"additionalProperties":False,"properties":{
      "userId":{"type":"string","minLength":1},
      "streamId":{"type":"string","minLength":1,"description":"Omit for any stream of the user (then only usable with the full publish path)"},
      "ttlSeconds":{"type":"integer","minimum":1,"maximum":315360000,"default":2592000},
      "allowIps":{"type":"array","items":{"type":"string"},"description":"Addresses or CIDRs; empty or absent = any"},
      "alias":{"type":"string","pattern":"^[A-Za-z0-9._-]{1,64}$"}}},
   "KeyCreated": {"type":"object","required":["keyId","key","expiresAt"],"properties":{
      "keyId":{"type":"string"},"key":{"type":"string","description":"Shown only here"},"expiresAt":{"type":"string","format":"date-time"}}},
   "Key": {"type":"object","required":["keyId","userId","streamId","alias","createdAt","expiresAt","allowIps"],"properties":{
      "keyId":{"type":"string"},"userId":{"type":"string"},"streamId":{"type":["string","null"]},"alias":{"type":["string","null"]},
      "createdAt":{"type":"string","format":"date-time"},"expiresAt":{"type":"string","format":"date-time"},
      "allowIps":{"type":"array","items":{"type":"string"}}}},
   "KeyList": {"type":"object","required":["keys"],"properties":{"keys":{"type":"array","items":{"$ref":"#/components/schemas/Key"}}}}
  }}
}
open(__import__('os').path.join(__import__('os').path.dirname(__file__), '..', 'src', 'admin', 'openapi.json'), 'w').write(json.dumps(doc, indent=2)+"\n")
