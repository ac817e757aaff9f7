"""Media processing: transcode, animated graphics, snapshots, sample snapshots, sprites, adaptive streaming."""

from mps_callback.project.family import Family, Group

FAMILIES = {
    "TranscodeTask": Family(roles={"Path": ("main", 2)}),
    "AnimatedGraphicTask": Family(),
    "SnapshotByTimeOffsetTask": Family(segments={"PicInfoSet": "snapshot"}),
    "SampleSnapshotTask": Family(),
    "ImageSpriteTask": Family(),
    "AdaptiveDynamicStreamingTask": Family(roles={"Path": ("main", 3)}),
}

GROUP = Group(
    name="MediaProcess",
    families=FAMILIES,
    result_sets=("MediaProcessResultSet",),
    activities=tuple(FAMILIES),  # each file-processing family is also a ScheduleTask activity
)
