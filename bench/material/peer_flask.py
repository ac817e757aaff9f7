# Bench material: the old-style Flask receiver teams run today, kept as the bench's peer.
# Its DDL is the reference for the legacy mps_task_result table: keep it exactly as is.
"""The peer for side-by-side measurement: the receiver as teams run it today.

Flask app, POST /pyapi/mps/callback on :8787, parses the MPS JSON, pulls task id,
status, the de-logo output and subtitle files (as URLs on a fixed COS domain), the input
video's name and SessionContext, and upserts one row per TaskId into MySQL table
mps_task_result (task_id, status, create_time, video_name, url, output_path, vtt_url,
en_vtt, username) with a fresh pymysql connection per request and retry with back-off.

Run: python peer_flask.py                                 (Werkzeug, threaded, as its users run it)
     gunicorn -w 4 -b 127.0.0.1:8788 peer_flask:app         (the same app under a production server)
"""
import logging
import os
import time

import pymysql
from flask import Flask, jsonify, request

app = Flask(__name__)
log = logging.getLogger("peer_flask")

DB = dict(
    host=os.environ.get("BASE_DB_HOST", "127.0.0.1"),
    port=int(os.environ.get("BASE_DB_PORT", "3306")),
    user=os.environ.get("BASE_DB_USER", "root"),
    password=os.environ.get("BASE_DB_PASSWORD", ""),
    database=os.environ.get("BASE_DB_NAME", "video_auto"),
    charset="utf8mb4",
    connect_timeout=5,
)

# The table as the public Flask receiver this peer mirrors writes it: one row per TaskId,
# upserted (ON DUPLICATE KEY UPDATE), with the de-logo output, the subtitle files as URLs,
# and SessionContext kept as the user name.
DDL = """
CREATE TABLE IF NOT EXISTS mps_task_result (
  id BIGINT AUTO_INCREMENT PRIMARY KEY,
  task_id VARCHAR(128) NOT NULL,
  status VARCHAR(32),
  create_time VARCHAR(64),
  video_name VARCHAR(512),
  url TEXT,
  output_path TEXT,
  vtt_url TEXT,
  en_vtt TEXT,
  username VARCHAR(1024),
  UNIQUE KEY uk_task_id (task_id)
) DEFAULT CHARSET=utf8mb4"""

BASE_URL = os.environ.get("BASE_COS_URL", "https://zh-video-1250000000.cos.ap-shanghai.myqcloud.com")


def extract(body):
    ev = body.get("WorkflowTaskEvent") or {}
    row = dict(task_id=ev.get("TaskId") or body.get("TaskId") or "", status=ev.get("Status") or body.get("NotificationType"),
               create_time="", video_name=None, url="", output_path="", vtt_url="", en_vtt="",
               username=body.get("SessionContext", ""))
    for r in ev.get("SmartSubtitlesTaskResult") or []:
        if r.get("Type") == "AsrFullTextRecognition":
            task = r.get("AsrFullTextTask") or {}
            row["vtt_url"] = (task.get("Output") or {}).get("SubtitlePath", "")
            row["create_time"] = task.get("BeginProcessTime", "")
    url = ((ev.get("InputInfo") or {}).get("UrlInputInfo") or {}).get("Url")
    if url:
        row["video_name"] = "/".join(url.split("/")[-2:])
    for r in ev.get("AiAnalysisResultSet") or []:
        if r.get("Type") == "DeLogo" and (r.get("DeLogoTask") or {}).get("Status") == "SUCCESS":
            task = r["DeLogoTask"]
            out = task.get("Output") or {}
            row["create_time"] = task.get("BeginProcessTime", "")
            row["output_path"] = out.get("Path", "")
            row["url"] = BASE_URL + row["output_path"] if row["output_path"] else ""
            if out.get("OriginSubtitlePath"):
                row["vtt_url"] = BASE_URL + out["OriginSubtitlePath"]
            if out.get("TranslateSubtitlePath"):
                row["en_vtt"] = BASE_URL + out["TranslateSubtitlePath"]
            if row["output_path"]:
                row["video_name"] = "/".join(row["output_path"].split("/")[-2:])
    return row


def insert(row, retries=3):
    delay = 0.2
    for attempt in range(retries):
        try:
            conn = pymysql.connect(**DB)
            try:
                with conn.cursor() as cur:
                    cols = ",".join(row)
                    cur.execute(
                        f"INSERT INTO mps_task_result ({cols}) VALUES ({','.join(['%s'] * len(row))})"
                        " ON DUPLICATE KEY UPDATE status=VALUES(status), video_name=VALUES(video_name),"
                        " url=VALUES(url), output_path=VALUES(output_path),"
                        " vtt_url=COALESCE(NULLIF(VALUES(vtt_url), ''), vtt_url),"
                        " en_vtt=COALESCE(NULLIF(VALUES(en_vtt), ''), en_vtt)",
                        list(row.values()),
                    )
                conn.commit()
                return
            finally:
                conn.close()
        except pymysql.err.OperationalError:
            if attempt == retries - 1:
                raise
            time.sleep(delay)
            delay *= 2


@app.route("/pyapi/mps/callback", methods=["POST"])
def callback():
    try:
        body = request.get_json(force=True)
        insert(extract(body))
        return jsonify({"code": 0, "msg": "ok"})
    except Exception as exc:  # catch everything and log it, as the original does
        log.exception("callback failed: %s", exc)
        return jsonify({"code": 500, "msg": str(exc)}), 500


def init_db():
    conn = pymysql.connect(**DB)
    with conn.cursor() as cur:
        cur.execute(DDL)
    conn.commit()
    conn.close()


init_db()

if __name__ == "__main__":
    app.run(host="0.0.0.0", port=int(os.environ.get("BASE_PORT", "8787")))
