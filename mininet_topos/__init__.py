"""Fat-tree descriptions and the Mininet lab built from them."""
