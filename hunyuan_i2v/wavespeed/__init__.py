"""WaveSpeed's hosted Hunyuan image-to-video endpoints: HTTP client, jobs, journal, key handling (no ComfyUI types)."""
