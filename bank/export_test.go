package bank

// ChunkSize lets the external tests check the write and read pattern.
const ChunkSize = chunkSize
