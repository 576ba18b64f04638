"""Data sources to GZIP TFRecords of tf.Example: SVHN files, folder trees (svhn-tfx-data)."""
