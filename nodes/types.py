"""Names of the data types that cross the graph between this pack's nodes."""

CATEGORY = "HunyuanVideo I2V"
MODEL = "HYVI2V_MODEL"  # hunyuan_i2v.transformer.LoadedTransformer
VAE = "HYVI2V_VAE"  # hunyuan_i2v.vae.LoadedVAE
TEXT_ENCODERS = "HYVI2V_TEXT_ENCODERS"  # hunyuan_i2v.text_encoders.TextEncoders
CONDITIONING = "HYVI2V_CONDITIONING"  # hunyuan_i2v.conditioning.I2VConditioning
