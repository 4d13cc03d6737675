"""TF1 exports (`tf.compat.v1.saved_model.Builder`): frozen in a TF1 Session, measured and
re-exported with the TF1 builder."""
