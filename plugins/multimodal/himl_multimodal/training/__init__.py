"""Training image and text models together on (image, report) pairs, beyond what hi-ml ships."""
