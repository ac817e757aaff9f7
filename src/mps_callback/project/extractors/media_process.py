"""Media processing: transcode, animated graphics, snapshots, sample snapshots, sprites, adaptive streaming."""

from mps_callback.project.family import Family

GROUP = "MediaProcess"

FAMILIES = {
    "TranscodeTask": Family(roles={"Path": ("main", 2)}),
    "AnimatedGraphicTask": Family(),
    "SnapshotByTimeOffsetTask": Family(segments={"PicInfoSet": "snapshot"}),
    "SampleSnapshotTask": Family(),
    "ImageSpriteTask": Family(),
    "AdaptiveDynamicStreamingTask": Family(roles={"Path": ("main", 3)}),
}
