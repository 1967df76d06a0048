"""One protocol for every model family (SD1.x/2.x, SDXL, SD3, FLUX) over diffusers' public components."""
