module webpubsub

go 1.19
