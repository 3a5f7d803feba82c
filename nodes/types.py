"""Names of the data types that cross the graph between this pack's nodes (either model family)."""

CATEGORY = "HunyuanVideo I2V"
MODEL = "HYVI2V_MODEL"  # hunyuan_i2v.shared.transformer.LoadedTransformer (a family's subclass)
VAE = "HYVI2V_VAE"  # hunyuan_i2v.shared.vae.LoadedVAE (a family's subclass)
TEXT_ENCODERS = "HYVI2V_TEXT_ENCODERS"  # the family's text_encoders.TextEncoders
CONDITIONING = "HYVI2V_CONDITIONING"  # the family's conditioning.I2VConditioning (or 1.5's SRConditioning)
UPSAMPLER = "HYVI2V_LATENT_UPSAMPLER"  # hunyuan_video_15.upsampler.LatentUpsampler

# Words users type in the node search for any of this pack's nodes (ComfyUI's SEARCH_ALIASES; releases that
# predate it ignore the attribute). Each node adds its own role's words.
SEARCH_WORDS = ("hunyuan", "hunyuanvideo", "hunyuan video", "hyvideo", "i2v", "image to video", "img2vid",
                "hunyuanvideo 1.5", "1.5", "13b")
